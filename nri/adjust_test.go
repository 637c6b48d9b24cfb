package nri

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/volume"
	"github.com/mooring-dev/mooring/volume/volumetest"
)

// TestAdjustment: each staged volume becomes a bind mount at its target
// with the core's options, and its source an argument of the one
// createRuntime check: the plugin never sees the rootfs, so the check
// applies the target rule to where the runtime mounted.
func TestAdjustment(t *testing.T) {
	const bin = "/opt/mooring/bin/mooring"
	check := []string{"mooring", "hook", "check-mounts"}
	a := volume.Staged{Volume: "t/a", Source: "/run/mooring/mnt/v1", Target: "/a"}
	b := volume.Staged{Volume: "t/b", Source: "/run/mooring/mnt/v2", Target: "/b", ReadOnly: true}
	for _, tc := range []struct {
		name       string
		staged     []volume.Staged
		wantMounts []*api.Mount
		wantArgs   []string
	}{
		{name: "read-write", staged: []volume.Staged{a},
			wantMounts: []*api.Mount{{Destination: "/a", Type: "bind", Source: a.Source, Options: []string{"rbind", "nosuid", "nodev"}}},
			wantArgs:   append(check, a.Source)},
		{name: "read-write and read-only", staged: []volume.Staged{a, b},
			wantMounts: []*api.Mount{
				{Destination: "/a", Type: "bind", Source: a.Source, Options: []string{"rbind", "nosuid", "nodev"}},
				{Destination: "/b", Type: "bind", Source: b.Source, Options: []string{"rbind", "nosuid", "nodev", "ro"}},
			},
			wantArgs: append(check, a.Source, b.Source)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adj := adjustment(tc.staged, bin)
			if !reflect.DeepEqual(adj.GetMounts(), tc.wantMounts) {
				t.Errorf("mounts %v, want %v", adj.GetMounts(), tc.wantMounts)
			}
			hooks := adj.GetHooks().GetCreateRuntime()
			if len(hooks) != 1 || hooks[0].Path != bin || !reflect.DeepEqual(hooks[0].Args, tc.wantArgs) || hooks[0].GetTimeout().GetValue() <= 0 {
				t.Errorf("createRuntime hooks %v, want one running %s %v", hooks, bin, tc.wantArgs)
			}
		})
	}
}

// fakePlugin is a plugin on a core with fake devices, without a request
// deadline to race (the tests judge behaviour, not speed).
func fakePlugin(t *testing.T) (*Plugin, *volume.Manager, *volumetest.Kernel) {
	t.Helper()
	k := volumetest.NewKernel()
	m, err := volume.New(testConfig(t, `"team-a"`), volume.WithDevices(volume.Devices{Loops: k, FS: k, Mounts: k, Blocks: k}))
	if err != nil {
		t.Fatal(err)
	}
	return NewPlugin(m, slog.New(slog.DiscardHandler), time.Hour, "/opt/mooring/bin/mooring"), m, k
}

// TestCreateContainerOnFakeDevices runs the plugin's create and stop
// against the core on fake devices: no root, no runtime.
func TestCreateContainerOnFakeDevices(t *testing.T) {
	p, m, k := fakePlugin(t)
	ctx := context.Background()
	sb := pod("team-a", "db", map[string]string{annotations.KeyPod: `[{name: data, target: /data, readOnly: true}]`})
	c := ctr(sb, "postgres")

	adj, _, err := p.CreateContainer(ctx, sb, c)
	if err != nil {
		t.Fatal(err)
	}
	mounts := adj.GetMounts()
	if len(mounts) != 1 || mounts[0].Destination != "/data" || !m.IsStaging(mounts[0].Source) ||
		strings.Join(mounts[0].Options, ",") != "rbind,nosuid,nodev,ro" || k.MountCount() != 1 {
		t.Fatalf("mounts %v, %d staged: want /data read-only from its staging dir", mounts, k.MountCount())
	}
	atts, err := m.Attachments()
	if err != nil || len(atts) != 1 || atts[0].Owner.Tenant != "team-a" || atts[0].Owner.Scope != "team-a" {
		t.Fatalf("attachments %+v %v: want one, tenant and scope the pod's namespace", atts, err)
	}

	if _, err := p.StopContainer(ctx, sb, c); err != nil {
		t.Fatal(err)
	}
	if atts, _ := m.Attachments(); len(atts) != 0 || k.MountCount() != 0 || k.AttachedCount() != 0 {
		t.Fatalf("after stop: %d attachments, %d mounts, %d loops", len(atts), k.MountCount(), k.AttachedCount())
	}

	bad := pod("team-a", "bad", map[string]string{annotations.KeyPod: `[{name: "Bad!", target: /x}]`})
	if _, _, err := p.CreateContainer(ctx, bad, ctr(bad, "x")); err == nil || !strings.Contains(err.Error(), `name "Bad!"`) || k.MountCount() != 0 {
		t.Fatalf("bad request: err = %v", err)
	}
}

// TestAdjustmentBlock: a raw block volume becomes a device of exactly its
// numbers at the target and cgroup rules after the runtime's own allow:
// "rw", or "r" and a deny of "w" when read-only. No mount, and no mount
// check when no volume is mounted.
func TestAdjustmentBlock(t *testing.T) {
	rw := volume.Staged{Volume: "t/rw", Target: "/disk", Block: &volume.BlockDevice{Path: "/dev/loop3", Major: 7, Minor: 3}}
	ro := volume.Staged{Volume: "t/ro", Target: "/ro", ReadOnly: true, Block: &volume.BlockDevice{Path: "/dev/loop4", Major: 7, Minor: 4}}
	if adj := adjustment([]volume.Staged{rw}, "/opt/mooring/bin/mooring"); len(adj.GetMounts()) != 0 || len(adj.GetHooks().GetCreateRuntime()) != 0 {
		t.Fatalf("mounts %v, hooks %v: want none", adj.GetMounts(), adj.GetHooks())
	}
	adj := adjustment([]volume.Staged{rw, ro}, "/opt/mooring/bin/mooring")
	if hooks := adj.GetHooks().GetCreateRuntime(); len(adj.GetMounts()) != 0 || len(hooks) != 1 ||
		strings.Join(hooks[0].Args, " ") != "mooring hook check-mounts --read-only-device=7:4" {
		t.Fatalf("mounts %v, hooks %v: want no mount and the read-only device checked", adj.GetMounts(), hooks)
	}
	root := uint32(0)
	want := []*api.LinuxDevice{
		{Path: "/disk", Type: "b", Major: 7, Minor: 3, FileMode: api.FileMode(os.FileMode(0o660)), Uid: api.UInt32(root), Gid: api.UInt32(root)},
		{Path: "/ro", Type: "b", Major: 7, Minor: 4, FileMode: api.FileMode(os.FileMode(0o440)), Uid: api.UInt32(root), Gid: api.UInt32(root)},
	}
	for _, d := range want {
		if d.FileMode == nil || d.Uid == nil {
			t.Fatal("test's optional values are nil")
		}
	}
	if !reflect.DeepEqual(adj.GetLinux().GetDevices(), want) {
		t.Errorf("devices %v, want %v", adj.GetLinux().GetDevices(), want)
	}
	var rules []string
	for _, r := range adj.GetLinux().GetResources().GetDevices() {
		rules = append(rules, fmt.Sprintf("%v %s %d:%d %s", r.Allow, r.Type, r.Major.GetValue(), r.Minor.GetValue(), r.Access))
	}
	if got := strings.Join(rules, "; "); got != "true b 7:3 rw; true b 7:4 r; false b 7:4 w" {
		t.Errorf("rules %q", got)
	}
	fs := volume.Staged{Volume: "t/a", Source: "/run/mooring/mnt/v1", Target: "/a"}
	adj = adjustment([]volume.Staged{rw, fs}, "/opt/mooring/bin/mooring")
	if hooks := adj.GetHooks().GetCreateRuntime(); len(adj.GetMounts()) != 1 || len(hooks) != 1 || len(hooks[0].Args) != 4 || hooks[0].Args[3] != fs.Source {
		t.Errorf("mixed: mounts %v, hooks %v: want the filesystem volume mounted and checked", adj.GetMounts(), hooks)
	}
}

// TestReadOnlyBlockOnCRIO: CRI-O applies an adjustment's devices but not
// its cgroup rules, so a read-only raw block volume is refused there
// before anything is attached; read-write ones and other runtimes pass.
func TestReadOnlyBlockOnCRIO(t *testing.T) {
	p, _, k := fakePlugin(t)
	ctx := context.Background()
	if _, err := p.Configure(ctx, "", "cri-o", "1.34.0"); err != nil {
		t.Fatal(err)
	}
	sb := pod("team-a", "db", map[string]string{annotations.KeyPod: `[{name: raw, target: /disk, mode: block, readOnly: true}]`})
	_, _, err := p.CreateContainer(ctx, sb, ctr(sb, "c"))
	if err == nil || !strings.Contains(err.Error(), `volume "raw": a read-only raw block volume needs the plugin's device cgroup rules, which cri-o does not apply`) || k.Attaches != 0 {
		t.Fatalf("read-only block on CRI-O: %v, %d attaches", err, k.Attaches)
	}
	rw := pod("team-a", "rw", map[string]string{annotations.KeyPod: `[{name: raw, target: /disk, mode: block}]`})
	adj, _, err := p.CreateContainer(ctx, rw, ctr(rw, "c"))
	if err != nil || len(adj.GetLinux().GetDevices()) != 1 {
		t.Fatalf("read-write block on CRI-O: %v, %v", adj, err)
	}
	if _, err := p.StopContainer(ctx, rw, ctr(rw, "c")); err != nil || k.AttachedCount() != 0 {
		t.Fatalf("stop: %v, %d attached", err, k.AttachedCount())
	}
}

// countingObserver counts the operations a manager reports.
type countingObserver struct{ ops []string }

func (o *countingObserver) Observe(op string, _ time.Duration, _ error) { o.ops = append(o.ops, op) }

// TestConfigureKeepsTheObserver: a config from the runtime (Configure)
// replaces the plugin's manager; the new one still reports operations to
// the metrics, and the metrics read its volumes (before, the operation
// counters stopped at the first Configure and the figures stayed on the
// start-up config's state).
func TestConfigureKeepsTheObserver(t *testing.T) {
	k := volumetest.NewKernel()
	obs := &countingObserver{}
	opts := []volume.Option{volume.WithDevices(volume.Devices{Loops: k, FS: k, Mounts: k, Blocks: k}), volume.WithObserver(obs)}
	m, err := volume.New(testConfig(t, `"team-a"`), opts...)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlugin(m, slog.New(slog.DiscardHandler), time.Hour, "/opt/mooring/bin/mooring", opts...)
	dir := t.TempDir()
	runtimeCfg := fmt.Sprintf("state_dir = %q\nrun_dir = %q\n[pools.default]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "run"), mkdir(t, dir, "pool"))
	ctx := context.Background()
	if _, err := p.Configure(ctx, runtimeCfg, "containerd", "2.4.2"); err != nil {
		t.Fatal(err)
	}
	sb := pod("team-a", "db", map[string]string{annotations.KeyPod: `[{name: data, target: /data}]`})
	if _, _, err := p.CreateContainer(ctx, sb, ctr(sb, "c")); err != nil {
		t.Fatal(err)
	}
	vols, pools, err := p.Stats(ctx, "", "")
	if err != nil || len(vols) != 1 || len(pools) != 1 || pools[0].Volumes != 1 {
		t.Fatalf("stats of the configured manager: %+v %+v %v", vols, pools, err)
	}
	if _, err := p.StopContainer(ctx, sb, ctr(sb, "c")); err != nil {
		t.Fatal(err)
	}
	if strings.Join(obs.ops, ",") != "acquire,release" {
		t.Fatalf("observed %v, want acquire and release", obs.ops)
	}
}
