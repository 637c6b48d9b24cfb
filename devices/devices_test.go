package devices

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/testenv"
)

const testTagPrefix = TagPrefix + "devtest-"

// image makes a sparse file of size bytes in a temp dir.
func image(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// attach attaches img and registers a cleanup that releases and, if
// needed, detaches only this device.
func attach(t testing.TB, img, tag string) Loop {
	t.Helper()
	l, err := NewLoops().Attach(context.Background(), img, tag, CacheDirect)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		NewLoops().Detach(context.Background(), l.Path(), tag)
	})
	return l
}

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	_, err := os.Stat("/dev/loop-control")
	testenv.Require(t, err == nil, "/dev/loop-control")
}

func listed(t *testing.T, tag string) []LoopInfo {
	t.Helper()
	infos, err := NewLoops().List(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func TestLoopAttachListDetach(t *testing.T) {
	requireRoot(t)
	img := image(t, 64<<20)
	tag := testTagPrefix + "a"
	l := attach(t, img, tag)
	infos := listed(t, tag)
	if len(infos) != 1 || infos[0].Path != l.Path() || infos[0].Backing != img || infos[0].Major != 7 {
		t.Fatalf("List = %+v, want %s backed by %s", infos, l.Path(), img)
	}
	loops := NewLoops()
	if err := loops.Detach(context.Background(), l.Path(), tag+"-other"); !errors.Is(err, ErrBusy) {
		t.Fatalf("detach with a foreign tag: %v, want refusal", err)
	}
	// Autoclear: closing our only hold detaches the device.
	l.Close()
	waitGone(t, tag)
	if err := loops.Detach(context.Background(), l.Path(), tag); err != nil {
		t.Fatalf("detaching a gone device must succeed: %v", err)
	}
}

// TestLoopPersist: a persisted device (a raw block volume's: no mount
// holds it) stays attached, with its tag, after the last hold closes, and
// still detaches; a device some process holds open detaches when that
// process closes it.
func TestLoopPersist(t *testing.T) {
	requireRoot(t)
	tag := testTagPrefix + "persist"
	l := attach(t, image(t, 16<<20), tag)
	if err := l.Persist(); err != nil {
		t.Fatal(err)
	}
	path := l.Path()
	l.Close()
	if infos := listed(t, tag); len(infos) != 1 || infos[0].Path != path {
		t.Fatalf("after the hold closed: %+v, want %s still attached", infos, path)
	}
	user, err := os.OpenFile(path, os.O_RDWR, 0) // a container's open
	if err != nil {
		t.Fatal(err)
	}
	if err := NewLoops().Detach(context.Background(), path, tag); err != nil {
		t.Fatalf("detach while a process holds it open: %v", err)
	}
	user.Close()
	waitGone(t, tag)
}

// TestLoopRefusesUnsafeBacking: a backing file or pool directory another
// user could change (owned by someone else, group/other-writable) or a
// backing file that is not a regular file is refused before anything is
// attached, with one line naming the path and the fix.
func TestLoopRefusesUnsafeBacking(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, img string)
		want  string
	}{
		{"image writable by others", func(t *testing.T, dir, img string) { must(t, os.Chmod(img, 0o666)) }, "writable by group or others (mode 0666); chmod go-w " + "IMG"},
		{"image owned by a user", func(t *testing.T, dir, img string) { must(t, os.Chown(img, 1000, 1000)) }, "owned by uid 1000, not by uid 0 that mooring runs as; chown 0 IMG"},
		{"image is a fifo", func(t *testing.T, dir, img string) {
			must(t, os.Remove(img))
			must(t, unix.Mkfifo(img, 0o600))
		}, "not a regular file"},
		{"pool dir writable by others", func(t *testing.T, dir, img string) { must(t, os.Chmod(dir, 0o777)) }, "pool directory DIR: writable by group or others (mode 0777); chmod go-w DIR"},
		{"pool dir owned by a user", func(t *testing.T, dir, img string) { must(t, os.Chown(dir, 1000, 1000)) }, "pool directory DIR: owned by uid 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := image(t, 16<<20)
			dir := filepath.Dir(img)
			tc.setup(t, dir, img)
			tag := testTagPrefix + "unsafe"
			l, err := NewLoops().Attach(context.Background(), img, tag, CacheDirect)
			if err == nil {
				l.Close()
				NewLoops().Detach(context.Background(), l.Path(), tag)
				t.Fatal("attached")
			}
			want := strings.NewReplacer("IMG", img, "DIR", dir).Replace(tc.want)
			if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %q, want one line containing %q", err, want)
			}
			if got := listed(t, tag); len(got) != 0 {
				t.Fatalf("attached anyway: %+v", got)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoopDetachRefusesMounted(t *testing.T) {
	requireRoot(t)
	testenv.RequireTool(t, "mkfs.ext4")
	tag := testTagPrefix + "m"
	l := attach(t, image(t, 64<<20), tag)
	ctx := context.Background()
	if err := NewFilesystems().Format(ctx, l.Path(), FSExt4, "2b7e3c0a-6a3e-4e0e-9a53-1f1d2b6c0001"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := NewMounter().Mount(l.Path(), dir, FSExt4, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { NewMounter().Unmount(dir) })
	if err := NewLoops().Detach(ctx, l.Path(), tag); !errors.Is(err, ErrBusy) {
		t.Fatalf("detach of a mounted device: %v, want ErrBusy", err)
	}
	info, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(info) != 1 || !strings.Contains(info[0].Options, "nosuid") || !strings.Contains(info[0].Options, "nodev") {
		t.Fatalf("mount options %+v %v, want nosuid,nodev", info, err)
	}
	if info[0].Optional != "" {
		t.Fatalf("mount propagation %q, want private", info[0].Optional)
	}
	if ok, _ := NewMounter().Mounted(dir); !ok {
		t.Fatal("Mounted = false")
	}
	if err := NewMounter().Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if err := NewMounter().Unmount(dir); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
}

// TestLoopNeverDetachesForeignDevices attaches while another process keeps
// attaching devices with losetup; none of the foreign devices is touched.
func TestLoopNeverDetachesForeignDevices(t *testing.T) {
	requireRoot(t)
	losetup := testenv.RequireTool(t, "losetup")
	foreignImg := image(t, 16<<20)
	var foreign []string
	t.Cleanup(func() {
		for _, d := range foreign {
			exec.Command(losetup, "-d", d).Run()
		}
	})
	done := make(chan []string)
	go func() {
		var devs []string
		for range 20 {
			out, err := exec.Command(losetup, "--find", "--show", foreignImg).Output()
			if err == nil {
				devs = append(devs, strings.TrimSpace(string(out)))
			}
		}
		done <- devs
	}()
	ctx := context.Background()
	for i := range 20 {
		tag := testTagPrefix + "race" + string(rune('a'+i))
		l := attach(t, image(t, 16<<20), tag)
		if err := NewLoops().Detach(ctx, l.Path(), tag); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	foreign = <-done
	for _, d := range foreign {
		b, err := os.ReadFile("/sys/block/" + filepath.Base(d) + "/loop/backing_file")
		if err != nil || strings.TrimSpace(string(b)) != foreignImg {
			t.Errorf("foreign device %s was detached or changed: %q %v", d, b, err)
		}
	}
	if len(foreign) == 0 {
		t.Fatal("losetup attached nothing")
	}
}

func TestFilesystems(t *testing.T) {
	requireRoot(t)
	for _, fs := range []struct{ name, tool string }{{FSExt4, "mkfs.ext4"}, {FSXFS, "mkfs.xfs"}, {FSBtrfs, "mkfs.btrfs"}} {
		t.Run(fs.name, func(t *testing.T) {
			testenv.RequireTool(t, fs.tool)
			testenv.RequireTool(t, "blkid")
			ctx := context.Background()
			l := attach(t, image(t, 320<<20), testTagPrefix+"fs-"+fs.name)
			tools := NewFilesystems()
			p, err := tools.Probe(ctx, l.Path())
			if err != nil || !p.Empty {
				t.Fatalf("probe of a new image: %+v %v", p, err)
			}
			if id, err := tools.Identify(ctx, l.Path()); err != nil || id.Type != "" {
				t.Fatalf("identify of a new image: %+v %v", id, err)
			}
			const uuid = "0b4c3e1d-55aa-4f00-8a11-c0ffee000001"
			if err := tools.Format(ctx, l.Path(), fs.name, uuid); err != nil {
				t.Fatal(err)
			}
			p, err = tools.Probe(ctx, l.Path())
			if err != nil || p.Empty || p.Type != fs.name || p.UUID != uuid {
				t.Fatalf("probe after mkfs: %+v %v", p, err)
			}
			if id, err := tools.Identify(ctx, l.Path()); err != nil || id.Type != fs.name || id.UUID != uuid {
				t.Fatalf("identify after mkfs: %+v %v", id, err)
			}
			if err := tools.Check(ctx, l.Path(), fs.name); err != nil {
				t.Fatalf("check of a fresh filesystem: %v", err)
			}
			if err := tools.Format(ctx, l.Path(), fs.name, uuid); err == nil {
				t.Fatal("mkfs over an existing filesystem succeeded: it must refuse without force")
			}
		})
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	requireRoot(t)
	testenv.RequireTool(t, "e2fsck")
	ctx := context.Background()
	_, l := formatted(t, FSExt4, 64<<20, "corrupt")
	tools := NewFilesystems()
	// Zero the block group descriptors and inode table start: the
	// superblock stays recognisable, the metadata is gone.
	f, err := os.OpenFile(l.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 4096); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	f.Close()
	err = tools.Check(ctx, l.Path(), FSExt4)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("check of a corrupted ext4: %v, want ErrCorrupt", err)
	}
}

func TestProbeSeesForeignSignatures(t *testing.T) {
	requireRoot(t)
	mkswap := testenv.RequireTool(t, "mkswap")
	l := attach(t, image(t, 16<<20), testTagPrefix+"swap")
	if out, err := exec.Command(mkswap, l.Path()).CombinedOutput(); err != nil {
		t.Fatalf("mkswap: %v %s", err, out)
	}
	p, err := NewFilesystems().Probe(context.Background(), l.Path())
	if err != nil || p.Empty || p.Type != "swap" {
		t.Fatalf("probe of a swap device: %+v %v, want not empty", p, err)
	}
}

func TestToolTimeoutKillsTheProcessGroup(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "child.pid")
	start := time.Now()
	_, err := runTool(context.Background(), 300*time.Millisecond, "sh", "-c", "sleep 30 & echo $! > "+marker+"; wait")
	if err == nil || !strings.Contains(err.Error(), "stopped (SIGKILL) after") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("runTool waited for the child")
	}
	pid, _ := os.ReadFile(marker)
	waitFor(t, func() bool {
		st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}

// TestToolTimeoutNamesTheCallersDeadline: a caller's deadline shorter
// than the tool's own limit is the one the error reports (an NRI request
// of 1.5 s once said "after 20s").
func TestToolTimeoutNamesTheCallersDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := runTool(ctx, 20*time.Second, "sleep", "30")
	if err == nil || !strings.Contains(err.Error(), "after 300ms") {
		t.Fatalf("err = %v, want it stopped after the caller's 300ms", err)
	}
}

func TestToolErrors(t *testing.T) {
	if _, err := runTool(context.Background(), time.Second, "no-such-tool-mooring"); err == nil {
		t.Fatal("missing tool ran")
	}
	_, err := runTool(context.Background(), 5*time.Second, "sh", "-c", "echo first >&2; echo last line >&2; exit 3")
	var te *ToolError
	if !errors.As(err, &te) || te.ExitCode != 3 || te.Stderr != "last line" {
		t.Fatalf("err = %#v", err)
	}
}

func waitGone(t *testing.T, tag string) {
	t.Helper()
	waitFor(t, func() bool { return len(listed(t, tag)) == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func BenchmarkAttachDetach(b *testing.B) {
	requireRoot(b)
	img := image(b, 1<<30)
	loops := NewLoops()
	for i := 0; i < b.N; i++ {
		l, err := loops.Attach(context.Background(), img, testTagPrefix+"bench", CacheDirect)
		if err != nil {
			b.Fatal(err)
		}
		if err := loops.Detach(context.Background(), l.Path(), testTagPrefix+"bench"); err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
}

func BenchmarkMountUnmountExt4(b *testing.B) {
	requireRoot(b)
	l := attach(b, image(b, 1<<30), testTagPrefix+"bench-mount")
	if err := NewFilesystems().Format(context.Background(), l.Path(), FSExt4, "0b4c3e1d-55aa-4f00-8a11-c0ffee000003"); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	m := NewMounter()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Mount(l.Path(), dir, FSExt4, false); err != nil {
			b.Fatal(err)
		}
		if err := m.Unmount(dir); err != nil {
			b.Fatal(err)
		}
	}
}
