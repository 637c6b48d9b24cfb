package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// hookEnv is one test's runc with mooring's hooks and a scratch config.
type hookEnv struct {
	t       *testing.T
	scratch *lab.Scratch
	bins    lab.Bins
	runc    *lab.Runtime
	rootfs  string
}

func newHookEnv(t *testing.T) *hookEnv {
	t.Helper()
	e := &hookEnv{t: t, bins: lab.Binaries(t), rootfs: lab.Rootfs(t)}
	e.runc = lab.NewRuntime(t, lab.Runc(t))
	e.scratch = lab.NewScratch(t)
	return e
}

// bundle makes a bundle asking for request (under the plain key) with the
// hooks in config.json, running sh -c script.
func (e *hookEnv) bundle(request, script string) *lab.Bundle {
	b := lab.NewBundle(e.t, e.runc.Path, e.rootfs, "sh", "-c", script)
	if request != "" {
		b.Annotate(annotations.Key, request)
	}
	return b.AddHooks(e.bins.Mooring, e.scratch)
}

// run runs a container to completion and returns its stdout.
func (e *hookEnv) run(b *lab.Bundle, id string) string {
	e.t.Helper()
	out, errOut, err := e.runc.Run(b, id)
	if err != nil {
		e.t.Fatalf("runc run %s: %v\nstderr: %s\nlog: %s", id, err, errOut, e.scratch.Log())
	}
	return out
}

func TestHookRuncDataOutlivesContainers(t *testing.T) {
	e := newHookEnv(t)
	req := `[{name: data, target: /data, size: 128Mi}]`
	e.run(e.bundle(req, "echo kept > /data/file && sync"), "writer")
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after the container exited", n)
	}
	if out := e.run(e.bundle(req, "cat /data/file"), "reader"); strings.TrimSpace(out) != "kept" {
		t.Fatalf("second container read %q", out)
	}
}

func TestHookRuncTwoVolumes(t *testing.T) {
	e := newHookEnv(t)
	req := `[{name: a, target: /a}, {name: b, target: /srv/b}]`
	out := e.run(e.bundle(req, "echo 1 > /a/x && echo 2 > /srv/b/x && grep -E ' /(a|srv/b) ' /proc/mounts"), "two")
	for _, target := range []string{" /a ", " /srv/b "} {
		line := lineWith(out, target)
		if line == "" || !strings.Contains(line, "nosuid") || !strings.Contains(line, "nodev") {
			t.Errorf("mount %q inside the container: %q (want nosuid,nodev)", target, line)
		}
	}
	if out := e.run(e.bundle(req, "cat /a/x /srv/b/x"), "again"); out != "1\n2\n" {
		t.Fatalf("read back %q", out)
	}
}

func TestHookRuncFilesystems(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs", "btrfs"} {
		t.Run(fs, func(t *testing.T) {
			e := newHookEnv(t)
			req := `[{name: v, target: /data, size: 300Mi, fs: ` + fs + `}]`
			out := e.run(e.bundle(req, "echo "+fs+" > /data/f && grep ' /data ' /proc/mounts"), "w-"+fs)
			if !strings.Contains(out, " "+fs+" ") {
				t.Errorf("mount inside the container: %q, want %s", out, fs)
			}
			if out := e.run(e.bundle(req, "cat /data/f"), "r-"+fs); strings.TrimSpace(out) != fs {
				t.Errorf("read back %q", out)
			}
		})
	}
}

func TestHookRuncReadOnly(t *testing.T) {
	e := newHookEnv(t)
	e.run(e.bundle(`[{name: cfg, target: /cfg}]`, "echo v1 > /cfg/setting"), "writer")
	ro := `[{name: cfg, target: /cfg, readOnly: true}]`
	out := e.run(e.bundle(ro, "cat /cfg/setting; if touch /cfg/new 2>/dev/null; then echo WRITABLE; else echo refused; fi; grep ' /cfg ' /proc/mounts"), "reader")
	if !strings.HasPrefix(out, "v1\nrefused\n") || !strings.Contains(lineWith(out, " /cfg "), " ro,") {
		t.Fatalf("read-only volume: %q", out)
	}
}

func TestHookRuncFailedStartLeavesNothing(t *testing.T) {
	e := newHookEnv(t)
	b := lab.NewBundle(t, e.runc.Path, e.rootfs, "/nonexistent")
	b.Annotate(annotations.Key, `[{name: data, target: /data}]`).AddHooks(e.bins.Mooring, e.scratch)
	if _, _, err := e.runc.Run(b, "broken"); err == nil {
		t.Fatal("a container without its program started")
	}
	// lab's cleanup checks no loop device, mount or claim is left.
}

func TestHookRuncGCAfterLostPoststop(t *testing.T) {
	e := newHookEnv(t)
	b := e.bundle(`[{name: data, target: /data}]`, "sleep 600")
	if err := e.runc.Start(b, "lost"); err != nil {
		t.Fatal(err)
	}
	if n := e.scratch.Attachments(); n != 1 {
		t.Fatalf("%d attachments while running, want 1", n)
	}
	// Kill the container and drop runc's state so poststop never runs.
	if _, stderr, err := e.runc.Exec("kill", "lost", "KILL"); err != nil {
		t.Fatalf("runc kill: %v: %s", err, stderr)
	}
	waitFor(t, func() bool {
		out, _, _ := e.runc.Exec("state", "lost")
		return strings.Contains(out, `"stopped"`)
	})
	if err := os.RemoveAll(filepath.Join(e.runc.Root, "lost")); err != nil {
		t.Fatal(err)
	}
	if n := e.scratch.Attachments(); n != 1 {
		t.Fatalf("%d attachments before gc, want the stale 1", n)
	}
	out, stderr, err := lab.RunCmd(t, time.Minute, e.scratch.Env(), e.bins.Mooring, "gc")
	if err != nil || !strings.Contains(out, "released default/data from lost") {
		t.Fatalf("mooring gc: %v\n%s%s", err, out, stderr)
	}
	if out := e.run(e.bundle(`[{name: data, target: /data}]`, "echo ok"), "after"); out != "ok\n" {
		t.Fatalf("volume unusable after gc: %q", out)
	}
}

func TestHookRuncRefusesBadRequests(t *testing.T) {
	e := newHookEnv(t)
	tight := filepath.Join(t.TempDir(), "tight")
	if err := os.Mkdir(tight, 0o700); err != nil {
		t.Fatal(err)
	}
	e.scratch.WriteConfig(fmt.Sprintf("[pools.tight]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\ncapacity = \"100Mi\"\nfilesystems = [\"ext4\"]\n", tight))
	for _, tc := range []struct{ name, request, want string }{
		{"fs not allowed", `[{name: data, target: /data, pool: tight, fs: btrfs}]`, `pool "tight" allows only ext4`},
		{"over capacity", `[{name: data, target: /data, pool: tight, size: 200Mi}]`, "capacity 100Mi"},
		{"bidi target", `[{name: data, target: "/da\u202eta"}]`, "U+202E"},
		{"second document", "[{name: data, target: /data}]\n---\n[{name: data, target: /proc}]", "more than one YAML document"},
		{"malformed", `[{name: data, target: /data`, "not valid YAML"},
		{"unknown field", `[{name: data, target: /data, device: /dev/sda}]`, `unknown field "device"`},
		{"unknown pool", `[{name: data, target: /data, pool: gold}]`, `pool "gold": unknown pool`},
		{"too large", `[{name: data, target: /data, size: 2Gi}]`, "size over pool maximum: 2Gi asked"},
		{"escaping target", `[{name: data, target: /data/../../etc}]`, "must not contain .."},
		{"proc target", `[{name: data, target: /proc/sys}]`, "must not be /proc or below it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := e.runc.Run(e.bundle(tc.request, "true"), "bad-"+strings.ReplaceAll(tc.name, " ", "-"))
			if err == nil {
				t.Fatal("container started")
			}
			stderr = strings.ReplaceAll(stderr, `\"`, `"`) // runc quotes the hook's output
			if !strings.Contains(stderr, "mooring: ") || !strings.Contains(stderr, tc.want) {
				t.Fatalf("runc's error does not carry mooring's reason %q:\n%s", tc.want, stderr)
			}
		})
	}
	if ids := e.scratch.VolumeIDs(); len(ids) != 0 {
		t.Errorf("refused requests created volumes %v", ids)
	}
	if locks, _ := filepath.Glob(filepath.Join(e.scratch.RunDir, "locks", "*")); len(locks) != 0 {
		t.Errorf("refused requests left lock files %v", locks)
	}
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
