package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// nriEnv is a containerd 2.x with CRI and NRI, and mooring-nri connected
// to its NRI socket as an external plugin.
type nriEnv struct {
	t       testing.TB
	scratch *lab.Scratch
	bins    lab.Bins
	ctrd    *lab.Containerd
	cri     *lab.CRI
	plugin  *exec.Cmd
	exited  chan struct{}
}

func newNRIEnv(t testing.TB, opts lab.ContainerdOptions) *nriEnv {
	t.Helper()
	e := &nriEnv{t: t, bins: lab.Binaries(t)}
	if e.bins.NRI == "" {
		t.Fatal("cmd/mooring-nri was not built")
	}
	e.scratch = lab.NewScratch(t)
	e.ctrd = lab.NewContainerd(t, opts)
	e.cri = e.ctrd.CRI()
	e.startPlugin()
	return e
}

// startPlugin starts mooring-nri and waits until containerd lists it.
func (e *nriEnv) startPlugin() {
	t := e.t
	log, err := os.OpenFile(filepath.Join(e.scratch.Dir, "nri.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.bins.NRI, "--config", e.scratch.ConfigPath, "--socket", e.ctrd.NRISocket, "--idx", "10")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.plugin, e.exited = cmd, make(chan struct{})
	exited := e.exited
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	t.Cleanup(e.stopPlugin)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.pluginLog(), `"msg":"synchronized"`) {
		if time.Now().After(deadline) {
			t.Fatalf("mooring-nri did not synchronize:\n%s", e.pluginLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopPlugin stops mooring-nri by its PID; kill means SIGKILL.
func (e *nriEnv) stopPlugin() { e.signalPlugin(syscall.SIGTERM) }

func (e *nriEnv) signalPlugin(sig syscall.Signal) {
	select {
	case <-e.exited:
		return
	default:
	}
	e.plugin.Process.Signal(sig)
	<-e.exited
}

func (e *nriEnv) pluginLog() string {
	b, _ := os.ReadFile(filepath.Join(e.scratch.Dir, "nri.log"))
	return string(b)
}

// run runs one container to completion in pod and returns its exit code.
func (e *nriEnv) run(p *lab.Pod, name, script string) int32 {
	e.t.Helper()
	code, err := e.cri.RunContainer(p, name, "sh", "-c", script)
	if err != nil {
		e.t.Fatalf("container %s: %v\nplugin log:\n%s", name, err, e.pluginLog())
	}
	return code
}

func (e *nriEnv) pod(ns, name string, ann map[string]string) *lab.Pod {
	e.t.Helper()
	p, err := e.cri.RunPod(ns, name, ann)
	if err != nil {
		e.t.Fatalf("RunPodSandbox: %v\n%s", err, e.ctrd.Log())
	}
	return p
}

func (e *nriEnv) removePod(p *lab.Pod) {
	e.t.Helper()
	if err := e.cri.RemovePod(p); err != nil {
		e.t.Fatal(err)
	}
}

func TestNRIDataOutlivesPods(t *testing.T) {
	e := newNRIEnv(t, lab.ContainerdOptions{})
	ann := map[string]string{annotations.KeyPod: `[{name: data, target: /data, size: 100Mi}]`}
	p1 := e.pod("team-a", "writer", ann)
	if code := e.run(p1, "w", "echo from-k8s > /data/f && grep ' /data ' /proc/mounts | grep -q nosuid"); code != 0 {
		t.Fatalf("writer exited %d", code)
	}
	e.removePod(p1)
	waitForAttachments(t, e.scratch, 0)
	p2 := e.pod("team-a", "reader", ann)
	if code := e.run(p2, "r", `test "$(cat /data/f)" = from-k8s`); code != 0 {
		t.Fatalf("second pod did not read the data (exit %d)", code)
	}
	e.removePod(p2)
	waitForAttachments(t, e.scratch, 0)
}

func TestNRIPrecedenceSharingAndTenants(t *testing.T) {
	e := newNRIEnv(t, lab.ContainerdOptions{})
	p := e.pod("team-a", "multi", map[string]string{
		annotations.KeyPod:                    `[{name: shared, target: /shared}]`,
		annotations.KeyContainerPrefix + "db": `[{name: own, target: /own}]`,
	})
	if code := e.run(p, "db", "test -d /own && ! test -d /shared"); code != 0 {
		t.Fatalf("db: the container key must win over the pod key (exit %d)", code)
	}
	// Two containers of the pod share the pod-level volume.
	a, err := e.cri.CreateContainer(p, "a", "sh", "-c", "echo a > /shared/a; sleep 600")
	if err != nil || e.cri.Start(a) != nil {
		t.Fatalf("container a: %v", err)
	}
	if code := e.run(p, "b", "sleep 1; cat /shared/a"); code != 0 {
		t.Fatalf("b does not see a's write on the shared volume (exit %d)", code)
	}
	// Namespace team-b asking for "shared" gets its own volume.
	other := e.pod("team-b", "multi", map[string]string{annotations.KeyPod: `[{name: shared, target: /shared}]`})
	if code := e.run(other, "x", "test ! -e /shared/a"); code != 0 {
		t.Fatalf("team-b reached team-a's volume (exit %d)", code)
	}
	e.removePod(p)
	e.removePod(other)
	waitForAttachments(t, e.scratch, 0)
}

func TestNRIRefusalFailsCreateContainer(t *testing.T) {
	e := newNRIEnv(t, lab.ContainerdOptions{})
	p := e.pod("ns", "bad", map[string]string{annotations.KeyPod: `[{name: big, target: /data, size: 100Gi}]`})
	_, err := e.cri.CreateContainer(p, "c", "true")
	if err == nil || !strings.Contains(err.Error(), "mooring: ") || !strings.Contains(err.Error(), "size over pool maximum") {
		t.Fatalf("CreateContainer: %v", err)
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after a refused container", n)
	}
	e.removePod(p)
}

func TestNRISynchronizeAfterPluginRestart(t *testing.T) {
	e := newNRIEnv(t, lab.ContainerdOptions{})
	keep := e.pod("ns", "keep", map[string]string{annotations.KeyPod: `[{name: keep, target: /data}]`})
	gone := e.pod("ns", "gone", map[string]string{annotations.KeyPod: `[{name: gone, target: /data}]`})
	for _, p := range []*lab.Pod{keep, gone} {
		id, err := e.cri.CreateContainer(p, "c", "sleep", "600")
		if err != nil || e.cri.Start(id) != nil {
			t.Fatalf("start: %v", err)
		}
	}
	if n := e.scratch.Attachments(); n != 2 {
		t.Fatalf("%d attachments, want 2", n)
	}
	// The plugin dies while the pods run; one pod is removed meanwhile
	// (its stop and remove events are lost).
	e.signalPlugin(syscall.SIGKILL)
	e.removePod(gone)
	if n := e.scratch.Attachments(); n != 2 {
		t.Fatalf("%d attachments while the plugin is down, want the stale 2", n)
	}
	e.startPlugin()
	waitForAttachments(t, e.scratch, 1)
	if code := e.run(keep, "check", "test -d /data"); code != 0 {
		t.Fatalf("the live pod lost its volume")
	}
	e.removePod(keep)
	waitForAttachments(t, e.scratch, 0)
}

// TestNRIPreRegisteredPlugin lets containerd start mooring-nri from its
// plugin_path (index from the file name) with the admin config from
// plugin_config_path, delivered through NRI's Configure.
func TestNRIPreRegisteredPlugin(t *testing.T) {
	bins, s := lab.Binaries(t), lab.NewScratch(t)
	cfg, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	ctrd := lab.NewContainerd(t, lab.ContainerdOptions{
		Plugins:       map[string]string{"10-mooring": bins.NRI},
		PluginConfigs: map[string]string{"10-mooring": string(cfg)},
	})
	c := ctrd.CRI()
	p, err := c.RunPod("ns", "pre", map[string]string{annotations.KeyPod: `[{name: pre, target: /data}]`})
	if err != nil {
		t.Fatal(err)
	}
	code, err := c.RunContainer(p, "c", "sh", "-c", "grep -q ' /data ' /proc/mounts")
	if err != nil || code != 0 {
		t.Fatalf("container in a pod served by the pre-registered plugin: exit %d, %v\n%s", code, err, ctrd.Log())
	}
	if err := c.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	waitForAttachments(t, s, 0)
}

// TestShimAsContainerdBinaryName runs CRI containers through containerd
// with mooring-runtime as runc's BinaryName (no NRI plugin): the request
// comes from the pod annotation that containerd copies into the spec.
func TestShimAsContainerdBinaryName(t *testing.T) {
	bins, s := lab.Binaries(t), lab.NewScratch(t)
	ctrd := lab.NewContainerd(t, lab.ContainerdOptions{BinaryName: lab.WrapWithEnv(t, bins.Runtime, s.Env())})
	c := ctrd.CRI()
	ann := map[string]string{annotations.KeyPod: `[{name: ctrd, target: /data}]`}
	p, err := c.RunPod("ns", "shim", ann)
	if err != nil {
		t.Fatalf("RunPodSandbox through the shim: %v\n%s", err, ctrd.Log())
	}
	if n := s.Attachments(); n != 0 {
		t.Fatalf("the pod's sandbox got %d volume(s); only workload containers do", n)
	}
	code, err := c.RunContainer(p, "w", "sh", "-c", "echo via-containerd > /data/f")
	if err != nil || code != 0 {
		t.Fatalf("writer: exit %d %v\nlog: %s", code, err, s.Log())
	}
	code, err = c.RunContainer(p, "r", "sh", "-c", `test "$(cat /data/f)" = via-containerd`)
	if err != nil || code != 0 {
		t.Fatalf("reader: exit %d %v", code, err)
	}
	if err := c.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	waitForAttachments(t, s, 0)
}
