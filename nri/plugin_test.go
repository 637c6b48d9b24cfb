package nri

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/testenv"
	"github.com/mooring-dev/mooring/volume"
)

// runtime is an in-process NRI runtime (containerd's side of NRI) with
// mooring's plugin connected over a real socket, on real loop devices.
type runtime struct {
	t      *testing.T
	r      *adaptation.Adaptation
	plugin *Plugin
	m      *volume.Manager

	mu         sync.Mutex
	containers []*api.Container // what Synchronize reports
}

func newRuntime(t *testing.T, poolTenants string) *runtime {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "mkfs.ext4")
	cfg := testConfig(t, poolTenants)
	log := slog.New(slog.DiscardHandler)
	m, err := volume.New(cfg, volume.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	rt := &runtime{t: t, m: m, plugin: NewPlugin(m, log, 0, "/usr/local/bin/mooring")}
	t.Cleanup(func() { rt.assertNothingAttached() })
	rt.start()
	return rt
}

// testConfig has a loop pool "default" any tenant may use and a loop pool
// "restricted" for poolTenants, all in a temp dir.
func testConfig(t *testing.T, poolTenants string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`state_dir = %q
run_dir = %q
[pools.default]
driver = "loop"
directory = %q
default_size = "64Mi"
tenants = ["*"]
[pools.restricted]
driver = "loop"
directory = %q
tenants = [%s]
`, filepath.Join(dir, "state"), filepath.Join(dir, "run"), mkdir(t, dir, "pool"), mkdir(t, dir, "restricted"), poolTenants)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mkdir(t *testing.T, parts ...string) string {
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// start starts the runtime side and connects a fresh stub for the plugin,
// then waits for its Synchronize.
func (rt *runtime) start() {
	t := rt.t
	sockDir, err := os.MkdirTemp("", "nri") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "nri.sock")
	sync := func(ctx context.Context, cb adaptation.SyncCB) error {
		rt.mu.Lock()
		ctrs := rt.containers
		rt.mu.Unlock()
		_, err := cb(ctx, nil, ctrs)
		return err
	}
	update := func(context.Context, []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) { return nil, nil }
	r, err := adaptation.New("test-runtime", "v0", sync, update,
		adaptation.WithSocketPath(sock), adaptation.WithPluginPath(sockDir), adaptation.WithPluginConfigPath(sockDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	rt.r = r
	rt.plugin.mu.Lock()
	rt.plugin.synced = false
	rt.plugin.mu.Unlock()
	s, err := stub.New(rt.plugin, stub.WithPluginName("mooring"), stub.WithPluginIdx("10"), stub.WithSocketPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); r.Stop(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		rt.plugin.mu.Lock()
		synced := rt.plugin.synced
		rt.plugin.mu.Unlock()
		if synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin did not synchronize")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt.waitConsulted(deadline)
}

// waitConsulted waits until the runtime side hands requests to the plugin:
// the adaptation lists a plugin only after its Synchronize returned, and a
// request sent in between passes without it. The probe's request is
// refused by the parser, before any file or volume exists.
func (rt *runtime) waitConsulted(deadline time.Time) {
	p := pod("probe", "probe", map[string]string{annotations.KeyPod: `[{name: probe, target: relative}]`})
	c := ctr(p, "c")
	for {
		ctx := context.Background()
		if err := rt.r.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: p}); err != nil {
			rt.t.Fatal(err)
		}
		_, err := rt.r.CreateContainer(ctx, &api.CreateContainerRequest{Pod: p, Container: c})
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			rt.t.Fatal("the runtime never consulted the plugin")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pod(ns, name string, ann map[string]string) *api.PodSandbox {
	return &api.PodSandbox{Id: "pod-" + ns + "-" + name, Name: name, Namespace: ns, Uid: "uid-" + name, Annotations: ann}
}

func ctr(p *api.PodSandbox, name string) *api.Container {
	return &api.Container{Id: p.Id + "-" + name, PodSandboxId: p.Id, Name: name, State: api.ContainerState_CONTAINER_CREATED}
}

func (rt *runtime) create(p *api.PodSandbox, c *api.Container) ([]*api.Mount, error) {
	rt.t.Helper()
	ctx := context.Background()
	if err := rt.r.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: p}); err != nil {
		rt.t.Fatal(err)
	}
	resp, err := rt.r.CreateContainer(ctx, &api.CreateContainerRequest{Pod: p, Container: c})
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.containers = append(rt.containers, c)
	rt.mu.Unlock()
	return resp.GetAdjust().GetMounts(), nil
}

func (rt *runtime) remove(p *api.PodSandbox, c *api.Container) {
	rt.t.Helper()
	ctx := context.Background()
	if _, err := rt.r.StopContainer(ctx, &api.StopContainerRequest{Pod: p, Container: c}); err != nil {
		rt.t.Fatal(err)
	}
	if err := rt.r.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: p, Container: c}); err != nil {
		rt.t.Fatal(err)
	}
	rt.forget(c)
}

func (rt *runtime) forget(c *api.Container) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for i, x := range rt.containers {
		if x.Id == c.Id {
			rt.containers = append(rt.containers[:i], rt.containers[i+1:]...)
			return
		}
	}
}

func (rt *runtime) attachments() []volume.Attachment {
	atts, err := rt.m.Attachments()
	if err != nil {
		rt.t.Fatal(err)
	}
	return atts
}

func (rt *runtime) assertNothingAttached() {
	for _, a := range rt.attachments() {
		rt.t.Errorf("left attached: %s by %s", a.Volume, a.Owner.Key())
		rt.m.Release(context.Background(), a.Owner)
	}
}

func TestCreateStopRemove(t *testing.T) {
	rt := newRuntime(t, `"*"`)
	p := pod("team-a", "db", map[string]string{annotations.KeyPod: `[{name: data, target: /data}, {name: cfg, target: /cfg, readOnly: true}]`})
	c := ctr(p, "postgres")
	mounts, err := rt.create(p, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 2 || mounts[0].Destination != "/data" || mounts[0].Type != "bind" ||
		strings.Join(mounts[0].Options, ",") != "rbind,nosuid,nodev" || strings.Join(mounts[1].Options, ",") != "rbind,nosuid,nodev,ro" {
		t.Fatalf("adjustment mounts: %v", mounts)
	}
	if ok, _ := os.Stat(mounts[0].Source); ok == nil {
		t.Fatalf("staging source %s missing", mounts[0].Source)
	}
	atts := rt.attachments()
	if len(atts) != 2 || atts[0].Owner.Tenant != "team-a" || atts[0].Owner.Frontend != Frontend {
		t.Fatalf("attachments: %+v", atts)
	}
	rt.remove(p, c)
	if n := len(rt.attachments()); n != 0 {
		t.Fatalf("%d attachments after stop and remove", n)
	}
	// Stop and remove again: idempotent.
	rt.remove(p, c)
}

func TestContainerKeyWinsAndPodVolumeIsShared(t *testing.T) {
	rt := newRuntime(t, `"*"`)
	p := pod("ns", "web", map[string]string{
		annotations.KeyPod:                    `[{name: shared, target: /shared}]`,
		annotations.KeyContainerPrefix + "db": `[{name: own, target: /own}]`,
	})
	db, app, sidecar := ctr(p, "db"), ctr(p, "app"), ctr(p, "sidecar")
	m1, err := rt.create(p, db)
	if err != nil || len(m1) != 1 || m1[0].Destination != "/own" {
		t.Fatalf("db: %v %v", m1, err)
	}
	m2, err := rt.create(p, app)
	if err != nil || len(m2) != 1 || m2[0].Destination != "/shared" {
		t.Fatalf("app: %v %v", m2, err)
	}
	m3, err := rt.create(p, sidecar)
	if err != nil || len(m3) != 1 || m3[0].Source != m2[0].Source {
		t.Fatalf("sidecar does not share app's staged volume: %v %v", m3, err)
	}
	rt.remove(p, app)
	if _, err := os.Stat(m3[0].Source); err != nil {
		t.Fatal("shared volume unstaged while the sidecar uses it")
	}
	rt.remove(p, sidecar)
	rt.remove(p, db)
}

func TestTenantsAreIsolated(t *testing.T) {
	rt := newRuntime(t, `"team-a"`)
	req := map[string]string{annotations.KeyPod: `[{name: data, target: /data}]`}
	pa, pb := pod("team-a", "x", req), pod("team-b", "x", req)
	ca, cb := ctr(pa, "c"), ctr(pb, "c")
	ma, err := rt.create(pa, ca)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := rt.create(pb, cb)
	if err != nil {
		t.Fatal(err)
	}
	if ma[0].Source == mb[0].Source {
		t.Fatal("namespace team-b got team-a's volume")
	}
	// A pool restricted to team-a refuses team-b, whatever the annotation says.
	pr := pod("team-b", "y", map[string]string{annotations.KeyPod: `[{name: secret, target: /data, pool: restricted}]`})
	if _, err := rt.create(pr, ctr(pr, "c")); err == nil || !strings.Contains(err.Error(), "tenant not allowed in pool") {
		t.Fatalf("restricted pool: %v", err)
	}
	rt.remove(pa, ca)
	rt.remove(pb, cb)
}

func TestBadRequestFailsCreation(t *testing.T) {
	rt := newRuntime(t, `"*"`)
	for _, tc := range []struct{ ann, want string }{
		{`[{name: data, target: /data, size: 1Ti}]`, "size over pool maximum"},
		{`[{name: data, target: ../etc}]`, "must be an absolute path"},
		{`[{name: data, target: /data, pool: gold}]`, "unknown pool"},
	} {
		p := pod("ns", "bad", map[string]string{annotations.KeyPod: tc.ann})
		_, err := rt.create(p, ctr(p, "c"))
		if err == nil || !strings.Contains(err.Error(), "mooring: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.ann, err, tc.want)
		}
		rt.forget(ctr(p, "c"))
	}
	if n := len(rt.attachments()); n != 0 {
		t.Fatalf("%d attachments after refused requests", n)
	}
	// Containers without a request get no adjustment.
	p := pod("ns", "plain", nil)
	if mounts, err := rt.create(p, ctr(p, "c")); err != nil || len(mounts) != 0 {
		t.Fatalf("plain container: %v %v", mounts, err)
	}
}

func TestSynchronizeReleasesStaleClaims(t *testing.T) {
	rt := newRuntime(t, `"*"`)
	req := map[string]string{annotations.KeyPod: `[{name: v, target: /v}]`}
	live, gone := pod("ns", "live", req), pod("ns", "gone", map[string]string{annotations.KeyPod: `[{name: w, target: /w}]`})
	cl, cg := ctr(live, "c"), ctr(gone, "c")
	if _, err := rt.create(live, cl); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.create(gone, cg); err != nil {
		t.Fatal(err)
	}
	// The plugin goes away; meanwhile the runtime removes one container.
	rt.r.Stop()
	rt.forget(cg)
	rt.start()
	atts := rt.attachments()
	if len(atts) != 1 || atts[0].Owner.ID != cl.Id || atts[0].Owner.Scope != "ns" {
		t.Fatalf("after Synchronize: %+v, want only the live container's claim", atts)
	}
	// Periodic reconcile keeps what is live.
	if rep, err := rt.plugin.Reconcile(context.Background()); err != nil || len(rep.Released) != 0 {
		t.Fatalf("periodic reconcile: %+v %v", rep, err)
	}
	rt.remove(live, cl)
}
