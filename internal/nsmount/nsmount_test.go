package nsmount

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/procstat"
	"github.com/mooring-dev/mooring/internal/testenv"
)

func TestIntoRefusesBadArguments(t *testing.T) {
	if err := Into(os.Getpid(), 0, "rootfs", nil); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative root: %v", err)
	}
	// A pid that cannot exist (above the kernel's maximum).
	if err := Into(1<<30, 0, "/", nil); err == nil || !strings.Contains(err.Error(), "pidfd_open") {
		t.Errorf("missing process: %v", err)
	}
}

// target is a process in a private mount namespace, standing in for a
// container's init at createRuntime, with a scratch directory as its root.
type target struct {
	pid     int
	start   uint64 // the process's start time
	root    string // the "container root", same path in both namespaces
	outside string // a host directory no mount may ever reach
}

func newTarget(t *testing.T) *target {
	t.Helper()
	testenv.RequireRoot(t)
	unshare := testenv.RequireTool(t, "unshare")
	dir := t.TempDir()
	tg := &target{root: filepath.Join(dir, "rootfs"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{tg.root, tg.outside, filepath.Join(tg.root, "proc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	tg.pid = cmd.Process.Pid
	// unshare execs sleep after it made the namespace: wait for that.
	deadline := time.Now().Add(10 * time.Second)
	for {
		self, err1 := os.Readlink("/proc/self/ns/mnt")
		its, err2 := os.Readlink("/proc/" + strconv.Itoa(tg.pid) + "/ns/mnt")
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(tg.pid) + "/exe")
		if err1 == nil && err2 == nil && self != its && strings.HasSuffix(exe, "/sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the target process did not enter its own mount namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, start, err := procstat.Read(tg.pid)
	if err != nil {
		t.Fatal(err)
	}
	tg.start = start
	return tg
}

// source makes a host directory with one file to bring in as a volume.
func source(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inside is path p inside the target's mount namespace, reached from the host.
func (tg *target) inside(p string) string {
	return filepath.Join("/proc", strconv.Itoa(tg.pid), "root", p)
}

// mountsUnder returns the mount points, with their options, at or below
// dir in the target's namespace.
func (tg *target) mountsUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	return mountsUnder(t, filepath.Join("/proc", strconv.Itoa(tg.pid), "mountinfo"), dir)
}

// noHostMounts fails the test if anything is mounted on the host below the
// target's scratch directory: a mount that escaped the namespace.
func (tg *target) noHostMounts(t *testing.T) {
	t.Helper()
	if m := mountsUnder(t, "/proc/self/mountinfo", filepath.Dir(tg.root)); len(m) != 0 {
		t.Fatalf("mounts on the host under the scratch dir: %v", m)
	}
}

func mountsUnder(t *testing.T, mountinfo, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 5 && (dir == "/" || fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out[fields[4]] = fields[5]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIntoMountsInsideTheNamespace(t *testing.T) {
	tg := newTarget(t)
	rw, ro := source(t, "rw"), source(t, "ro")
	err := Into(tg.pid, tg.start, tg.root, []Mount{
		{Source: rw, Target: "/data"},
		{Source: ro, Target: "/srv/config", ReadOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(tg.inside(tg.root + "/srv/config/file")); err != nil || string(b) != "ro" {
		t.Fatalf("read-only volume inside: %q %v", b, err)
	}
	if err := os.WriteFile(tg.inside(tg.root+"/data/new"), []byte("x"), 0o644); err != nil {
		t.Fatalf("write to the read-write volume: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rw, "new")); err != nil {
		t.Fatalf("the write did not reach the staged source: %v", err)
	}
	err = os.WriteFile(tg.inside(tg.root+"/srv/config/new"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to the read-only volume: %v, want EROFS", err)
	}
	mounts := tg.mountsUnder(t, tg.root)
	for target, wantRO := range map[string]bool{"/data": false, "/srv/config": true} {
		opts, ok := mounts[tg.root+target]
		if !ok {
			t.Fatalf("no mount at %s in the namespace: %v", target, mounts)
		}
		list := strings.Split(opts, ",")
		if !slices.Contains(list, "nosuid") || !slices.Contains(list, "nodev") || slices.Contains(list, "ro") != wantRO {
			t.Errorf("%s mounted %s, want nosuid,nodev and ro=%v", target, opts, wantRO)
		}
	}
	tg.noHostMounts(t)
}

// TestIntoNeverLeavesTheRoot plants symlinks in the "image" that point a
// target outside the root; every mount stays below the root or is refused.
func TestIntoNeverLeavesTheRoot(t *testing.T) {
	for _, tc := range []struct {
		name, link   string // link planted at <root>/data ("" for none)
		mkdirInRoot  string // a directory created in the root first
		target       string
		wantErr      string // "" when the mount must land at wantAt
		wantAt       string
		linkIsOutAbs bool // link is "<outside>" (absolute host path)
	}{
		{name: "absolute symlink to a missing dir", linkIsOutAbs: true, target: "/data", wantErr: "create target"},
		{name: "relative symlink climbing out", link: "../../../../../../../..", target: "/data/sub", mkdirInRoot: "/sub", wantAt: "/sub"},
		{name: "absolute symlink to an image dir", linkIsOutAbs: true, target: "/data", mkdirInRoot: "<outside>", wantAt: "<outside>"},
		{name: "symlink to /proc", link: "/proc", target: "/data", wantErr: "resolves to /proc"},
		{name: "relative symlink to /proc", link: "../../proc", target: "/data", wantErr: "resolves to /proc"},
		{name: "dotdot in the target", target: "/../../../../data", wantAt: "/data"},
		{name: "target is a file", link: "", target: "/etc/passwd", mkdirInRoot: "/etc", wantErr: "create target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t)
			before := tg.mountsUnder(t, "/")
			link := tc.link
			if tc.linkIsOutAbs {
				link = tg.outside
			}
			if link != "" {
				if err := os.Symlink(link, filepath.Join(tg.root, "data")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.mkdirInRoot != "" {
				dir := strings.ReplaceAll(tc.mkdirInRoot, "<outside>", tg.outside)
				if err := os.MkdirAll(filepath.Join(tg.root, dir), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.target == "/etc/passwd" {
				if err := os.WriteFile(filepath.Join(tg.root, "etc/passwd"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := Into(tg.pid, tg.start, tg.root, []Mount{{Source: source(t, "v"), Target: tc.target}})
			got := tg.mountsUnder(t, "/")
			for p := range got {
				if _, old := before[p]; !old && !strings.HasPrefix(p, tg.root+"/") {
					t.Errorf("a mount landed outside the root at %s", p)
				}
			}
			if entries, _ := os.ReadDir(tg.outside); len(entries) != 0 {
				t.Errorf("the host directory %s gained %v", tg.outside, entries)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if m := tg.mountsUnder(t, tg.root); len(m) != 0 {
					t.Fatalf("a refused mount stayed: %v", m)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				at := tg.root + strings.ReplaceAll(tc.wantAt, "<outside>", tg.outside)
				if _, ok := tg.mountsUnder(t, tg.root)[at]; !ok {
					t.Fatalf("no mount at %s: %v", at, tg.mountsUnder(t, tg.root))
				}
			}
			tg.noHostMounts(t)
		})
	}
}

// TestIntoUndoesOnFailure: the second mount fails, so the first, already
// moved in, is taken out again.
func TestIntoUndoesOnFailure(t *testing.T) {
	tg := newTarget(t)
	if err := os.WriteFile(filepath.Join(tg.root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Into(tg.pid, tg.start, tg.root, []Mount{
		{Source: source(t, "a"), Target: "/a"},
		{Source: source(t, "b"), Target: "/file"},
	})
	if err == nil || !strings.Contains(err.Error(), "mount /file in the container") {
		t.Fatalf("err %v, want the second mount refused", err)
	}
	if m := tg.mountsUnder(t, tg.root); len(m) != 0 {
		t.Fatalf("mounts left after a failure: %v", m)
	}
}

func TestIntoGoneProcess(t *testing.T) {
	tg := newTarget(t)
	if err := unix.Kill(tg.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		var ws unix.WaitStatus
		if pid, _ := unix.Wait4(tg.pid, &ws, unix.WNOHANG, nil); pid == tg.pid {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := Into(tg.pid, tg.start, tg.root, []Mount{{Source: source(t, "v"), Target: "/data"}})
	if err == nil {
		t.Fatal("mounted into a process that is gone")
	}
}

// TestOnThrowawayThreadNeverUsesTheMainThread: many runs, so some start on
// the main thread; fn must never run there.
func TestOnThrowawayThreadNeverUsesTheMainThread(t *testing.T) {
	for i := 0; i < 500; i++ {
		var tid int
		if err := onThrowawayThread(func() error { tid = unix.Gettid(); return nil }); err != nil {
			t.Fatal(err)
		}
		if tid == unix.Getpid() {
			t.Fatalf("run %d used the main thread", i)
		}
	}
}

// TestIntoRootUnderASymlink: a container root reached through a symlinked
// directory (a bundle under /var/lib -> /data) works, and the mount lands
// below the root's real path.
func TestIntoRootUnderASymlink(t *testing.T) {
	tg := newTarget(t)
	link := filepath.Join(t.TempDir(), "bundle")
	if err := os.Symlink(filepath.Dir(tg.root), link); err != nil {
		t.Fatal(err)
	}
	err := Into(tg.pid, tg.start, filepath.Join(link, filepath.Base(tg.root)), []Mount{{Source: source(t, "v"), Target: "/data"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.mountsUnder(t, tg.root)[tg.root+"/data"]; !ok {
		t.Fatalf("no mount at %s/data: %v", tg.root, tg.mountsUnder(t, tg.root))
	}
	tg.noHostMounts(t)
}

// TestIntoRefusesAnotherProcess: a start time that is not the process's
// (its pid reused by another) is refused before anything is mounted.
func TestIntoRefusesAnotherProcess(t *testing.T) {
	tg := newTarget(t)
	err := Into(tg.pid, tg.start+1, tg.root, []Mount{{Source: source(t, "v"), Target: "/data"}})
	if err == nil || !strings.Contains(err.Error(), "not the container's process any more") {
		t.Fatalf("err %v, want a refusal", err)
	}
	if m := tg.mountsUnder(t, tg.root); len(m) != 0 {
		t.Fatalf("mounted into another process: %v", m)
	}
}
