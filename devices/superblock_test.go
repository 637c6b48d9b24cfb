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

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// TestIdentifyReadsTheState: a fresh filesystem of each kind is clean (the
// in-process checksum agrees with the tools'); one byte changed in the
// superblock, or the kernel's "errors" mark, makes it need a check.
func TestIdentifyReadsTheState(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		fs, mkfs string
		spoil    func(t *testing.T, dev string)
		want     string
	}{
		{FSExt4, "mkfs.ext4", func(t *testing.T, dev string) { run(t, "tune2fs", "-E", "force_fsck", dev) }, "errors recorded"},
		{FSExt4, "mkfs.ext4", func(t *testing.T, dev string) { poke(t, dev, ext4SuperOffset+0x78) }, "checksum mismatch"},     // s_volume_name
		{FSXFS, "mkfs.xfs", func(t *testing.T, dev string) { poke(t, dev, 108) }, "checksum mismatch"},                        // sb_fname
		{FSBtrfs, "mkfs.btrfs", func(t *testing.T, dev string) { poke(t, dev, btrfsSuperOffset+0x12b) }, "checksum mismatch"}, // label
	} {
		t.Run(tc.fs+"/"+tc.want, func(t *testing.T) {
			testenv.RequireTool(t, tc.mkfs)
			_, l := formatted(t, tc.fs, 320<<20, "sb-"+tc.fs)
			tools := NewFilesystems()
			p, err := tools.Identify(context.Background(), l.Path())
			if err != nil || !p.Clean || p.State != "" || p.Type != tc.fs {
				t.Fatalf("fresh %s: %+v %v, want clean", tc.fs, p, err)
			}
			tc.spoil(t, l.Path())
			p, err = tools.Identify(context.Background(), l.Path())
			if err != nil || p.Clean || !strings.Contains(p.State, tc.want) || p.Type != tc.fs {
				t.Fatalf("spoilt %s: %+v %v, want %q", tc.fs, p, err, tc.want)
			}
		})
	}
}

// TestIdentifyAfterMountAndCrash: ext4 unmounted cleanly is clean; an
// image copied while mounted (what a host crash leaves) needs its journal
// replayed, and e2fsck -p makes it clean again. The mount is made in a
// mount namespace of its own: a namespace another process creates
// meanwhile would copy a host mount and keep the filesystem alive after
// our unmount.
func TestIdentifyAfterMountAndCrash(t *testing.T) {
	requireRoot(t)
	testenv.RequireTool(t, "e2fsck")
	unshare := testenv.RequireTool(t, "unshare")
	ctx := context.Background()
	img, l := formatted(t, FSExt4, 128<<20, "crash")
	crashed := filepath.Join(t.TempDir(), "crashed.img")
	script := `mount -t ext4 "$1" "$2" && echo data > "$2/f" && sync && cp --sparse=always "$3" "$4" && umount "$2"`
	out, err := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh", l.Path(), t.TempDir(), img, crashed).CombinedOutput()
	if err != nil {
		t.Fatalf("mount, write, copy, unmount: %v %s", err, out)
	}
	tools := NewFilesystems()
	if p, err := tools.Identify(ctx, l.Path()); err != nil || !p.Clean {
		t.Fatalf("after a clean unmount: %+v %v", p, err)
	}
	c := attach(t, crashed, testTagPrefix+"crash-copy")
	p, err := tools.Identify(ctx, c.Path())
	if err != nil || p.Clean || p.State != "journal needs recovery" {
		t.Fatalf("copied while mounted: %+v %v, want journal recovery", p, err)
	}
	if err := tools.Check(ctx, c.Path(), FSExt4); err != nil {
		t.Fatal(err)
	}
	if p, err := tools.Identify(ctx, c.Path()); err != nil || !p.Clean {
		t.Fatalf("after e2fsck -p: %+v %v", p, err)
	}
}

// TestCheckRefusedBeforeTheDeadline: a check the caller's deadline leaves
// too little time for is refused before e2fsck starts, and the filesystem
// is untouched.
func TestCheckRefusedBeforeTheDeadline(t *testing.T) {
	requireRoot(t)
	testenv.RequireTool(t, "e2fsck")
	_, l := formatted(t, FSExt4, 64<<20, "deadline")
	tools := NewFilesystems()
	run(t, "tune2fs", "-E", "force_fsck", l.Path())
	ctx, cancel := context.WithTimeout(context.Background(), checkBase/2)
	defer cancel()
	err := tools.Check(ctx, l.Path(), FSExt4)
	if !errors.Is(err, ErrNoTime) {
		t.Fatalf("check under a short deadline: %v, want ErrNoTime", err)
	}
	if p, _ := tools.Identify(context.Background(), l.Path()); p.State != "errors recorded by the kernel" {
		t.Fatalf("the refused check touched the filesystem: %+v", p)
	}
}

// TestRepairOutlivesTheCallersDeadline: e2fsck, once started, is not
// killed when the caller's context ends.
func TestRepairOutlivesTheCallersDeadline(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "done")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := runToolStopping(context.WithoutCancel(ctx), time.Minute, unix.SIGTERM, "sh", "-c", "sleep 0.5; touch "+marker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the tool did not finish: %v", err)
	}
}

func run(t *testing.T, tool string, args ...string) {
	t.Helper()
	path := testenv.RequireTool(t, tool)
	if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v %s", tool, args, err, out)
	}
}

// poke flips the bits of one byte of dev.
func poke(t *testing.T, dev string, off int64) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkIdentify and BenchmarkCheckClean compare what a start of an
// existing, cleanly unmounted 1 GiB ext4 volume costs with the in-process
// superblock read and with the e2fsck -p run it replaces.
func BenchmarkIdentify(b *testing.B) {
	dev := formattedExt4(b)
	tools := NewFilesystems()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p, err := tools.Identify(context.Background(), dev); err != nil || !p.Clean {
			b.Fatal(p, err)
		}
	}
}

func BenchmarkCheckClean(b *testing.B) {
	dev := formattedExt4(b)
	tools := NewFilesystems()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tools.Check(context.Background(), dev, FSExt4); err != nil {
			b.Fatal(err)
		}
	}
}

func formattedExt4(b *testing.B) string {
	requireRoot(b)
	testenv.RequireTool(b, "mkfs.ext4")
	testenv.RequireTool(b, "e2fsck")
	_, l := formatted(b, FSExt4, 1<<30, "bench-sb")
	return l.Path()
}

// formatted makes fs on a new sparse image of size bytes, attached with a
// test tag ending in name; it returns the image and the loop device.
func formatted(t testing.TB, fs string, size int64, name string) (string, Loop) {
	t.Helper()
	img := image(t, size)
	l := attach(t, img, testTagPrefix+name)
	if err := NewFilesystems().Format(context.Background(), l.Path(), fs, "0b4c3e1d-55aa-4f00-8a11-c0ffee000010"); err != nil {
		t.Fatal(err)
	}
	return img, l
}

// TestFormatOutlivesTheCallersDeadline: the caller's context ends while
// mkfs runs (a 4 TiB sparse device keeps mkfs.ext4 busy for a while); mkfs
// still finishes and the device holds the filesystem.
func TestFormatOutlivesTheCallersDeadline(t *testing.T) {
	requireRoot(t)
	testenv.RequireTool(t, "mkfs.ext4")
	l := attach(t, image(t, 4<<40), testTagPrefix+"format-deadline")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan bool, 1)
	go func() {
		for ctx.Err() == nil {
			if mkfsRunningOn(l.Path()) {
				cancel()
				seen <- true
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		seen <- false
	}()
	const uuid = "0b4c3e1d-55aa-4f00-8a11-c0ffee000040"
	err := NewFilesystems().Format(ctx, l.Path(), FSExt4, uuid)
	cancel()
	if !<-seen {
		t.Fatal("mkfs finished before the test could cancel the caller's context")
	}
	if err != nil {
		t.Fatalf("format with the caller gone: %v", err)
	}
	if p, err := NewFilesystems().Identify(context.Background(), l.Path()); err != nil || p.UUID != uuid || !p.Clean {
		t.Fatalf("after the format: %+v %v", p, err)
	}
}

// mkfsRunningOn reports whether a mkfs.ext4 process has dev on its command line.
func mkfsRunningOn(dev string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "mkfs.ext4\x00") && strings.Contains(string(b), "\x00"+dev+"\x00") {
			return true
		}
	}
	return false
}
