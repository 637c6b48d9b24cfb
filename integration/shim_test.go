package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// shimEnv is one test's mooring-runtime in front of the current runc.
type shimEnv struct {
	t       *testing.T
	scratch *lab.Scratch
	bins    lab.Bins
	shim    *lab.Runtime
	rootfs  string
	runc    string
}

func newShimEnv(t *testing.T) *shimEnv {
	t.Helper()
	e := &shimEnv{t: t, bins: lab.Binaries(t), rootfs: lab.Rootfs(t), runc: lab.Runc(t)}
	if e.bins.Runtime == "" {
		t.Fatal("cmd/mooring-runtime was not built")
	}
	e.scratch = lab.NewScratch(t)
	e.shim = lab.NewRuntime(t, e.bins.Runtime, e.scratch.Env()...)
	return e
}

func (e *shimEnv) bundle(request, script string) *lab.Bundle {
	b := lab.NewBundle(e.t, e.runc, e.rootfs, "sh", "-c", script)
	if request != "" {
		b.Annotate(annotations.Key, request)
	}
	return b
}

func TestShimRuncDataOutlivesContainers(t *testing.T) {
	e := newShimEnv(t)
	req := `[{name: data, target: /data, size: 100Mi}, {name: ro, target: /ro, readOnly: true}]`
	b := e.bundle(req, "echo via-shim > /data/f && grep -E ' /(data|ro) ' /proc/mounts")
	out, stderr, err := e.shim.Run(b, "shim-w")
	if err != nil {
		t.Fatalf("shim run: %v\n%s\nlog: %s", err, stderr, e.scratch.Log())
	}
	if l := lineWith(out, " /ro "); !strings.Contains(l, "ro,") || !strings.Contains(l, "nosuid") {
		t.Errorf("read-only volume inside: %q", l)
	}
	// The shim rewrote config.json: bind mounts and the poststop hook,
	// everything else kept.
	var spec map[string]any
	raw, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	json.Unmarshal(raw, &spec)
	if hooks, _ := spec["hooks"].(map[string]any); hooks == nil || hooks["poststop"] == nil {
		t.Errorf("no poststop hook in the rewritten spec")
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after the container exited (poststop)", n)
	}
	out, stderr, err = e.shim.Run(e.bundle(req, "cat /data/f"), "shim-r")
	if err != nil || strings.TrimSpace(out) != "via-shim" {
		t.Fatalf("read back %q: %v %s", out, err, stderr)
	}
}

func TestShimPassThrough(t *testing.T) {
	e := newShimEnv(t)
	b := e.bundle("", "echo plain")
	before, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	out, stderr, err := e.shim.Run(b, "plain")
	if err != nil || out != "plain\n" {
		t.Fatalf("plain container through the shim: %v %q %s", err, out, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if string(before) != string(after) {
		t.Fatal("the shim rewrote the spec of a container without a request")
	}
	if out, _, err := e.shim.Exec("--version"); err != nil || !strings.Contains(out, "runc version") {
		t.Fatalf("--version passthrough: %v %q", err, out)
	}
}

func TestShimRefusesWithTheRuntimeLog(t *testing.T) {
	e := newShimEnv(t)
	logFile := filepath.Join(t.TempDir(), "runc-log.json")
	b := e.bundle(`[{name: big, target: /data, size: 5Gi}]`, "true")
	_, stderr, err := e.shim.Exec("--log", logFile, "--log-format", "json", "run", "--bundle", b.Dir, "refused")
	if err == nil || !strings.Contains(stderr, "mooring: ") || !strings.Contains(stderr, "size over pool maximum") {
		t.Fatalf("err=%v stderr=%s", err, stderr)
	}
	raw, _ := os.ReadFile(logFile)
	var entry struct{ Level, Msg string }
	if json.Unmarshal(raw, &entry) != nil || entry.Level != "error" || !strings.Contains(entry.Msg, "size over pool maximum") {
		t.Fatalf("runc --log has %q", raw)
	}
}

func TestShimAndHookNeverAttachTwice(t *testing.T) {
	e := newShimEnv(t)
	b := e.bundle(`[{name: both, target: /data}]`, "grep -c ' /data ' /proc/mounts").AddHooks(e.bins.Mooring, e.scratch)
	out, stderr, err := e.shim.Run(b, "both")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("want one mount at /data, got %q: %v %s\nlog: %s", out, err, stderr, e.scratch.Log())
	}
	// Through a symlink in the image the shim's mount is at the resolved
	// path; the hook still recognizes it.
	b = e.bundle(`[{name: linked, target: /data}]`, "grep -c ' /srv/data ' /proc/mounts").AddHooks(e.bins.Mooring, e.scratch)
	if err := os.MkdirAll(filepath.Join(b.Rootfs, "srv", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/srv/data", filepath.Join(b.Rootfs, "data")); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = e.shim.Run(b, "linked")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("want one mount at /srv/data, got %q: %v %s\nlog: %s", out, err, stderr, e.scratch.Log())
	}
}

func TestShimDeleteReleases(t *testing.T) {
	e := newShimEnv(t)
	if err := e.shim.Start(e.bundle(`[{name: d, target: /data}]`, "sleep 600"), "long"); err != nil {
		t.Fatal(err)
	}
	if n := e.scratch.Attachments(); n != 1 {
		t.Fatalf("%d attachments while running", n)
	}
	if _, stderr, err := e.shim.Exec("delete", "--force", "long"); err != nil {
		t.Fatalf("delete --force: %v %s", err, stderr)
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after delete --force", n)
	}
}

func TestShimPodman(t *testing.T) {
	e := newShimEnv(t)
	// podman does not pass its environment to the OCI runtime: the shim
	// gets the scratch config from a wrapper (an admin uses the default
	// /etc/mooring/config.toml instead).
	p := lab.NewPodman(t, lab.WrapWithEnv(t, e.bins.Runtime, e.scratch.Env()), t.TempDir())
	ann := `"volumes.mooring.dev=[{name: pod, target: /data}]"`
	run := func(script string) string {
		out, stderr, err := p.Run("run", "--rm", "--network", "none", "--annotation", ann, p.Image, "sh", "-c", script)
		if err != nil {
			t.Fatalf("podman --runtime shim: %v\n%s\nlog: %s", err, stderr, e.scratch.Log())
		}
		return out
	}
	run("echo podman-shim > /data/f")
	if out := run("cat /data/f"); strings.TrimSpace(out) != "podman-shim" {
		t.Fatalf("read back %q", out)
	}
}
