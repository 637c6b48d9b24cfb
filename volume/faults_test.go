package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/backends/loop"
	"github.com/mooring-dev/mooring/devices"
)

// testLoop attaches a test-owned loop device (not tagged by mooring) over
// a new sparse file and detaches it in cleanup.
func testLoop(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// TestRootPoolFull fills a pool that lives on its own small filesystem:
// creating a volume fails with ErrNoSpace and leaves no image or record.
func TestRootPoolFull(t *testing.T) {
	dev := testLoop(t, 48<<20)
	mustRun(t, "mkfs.ext4", "-q", dev)
	poolDir := t.TempDir()
	mustRun(t, "mount", dev, poolDir)
	t.Cleanup(func() { exec.Command("umount", "-l", poolDir).Run() })
	m, _ := rootManagerWith(t, fmt.Sprintf("[pools.small]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\n", poolDir))
	// Fill it.
	filler, _ := os.Create(filepath.Join(poolDir, "filler"))
	io.Copy(filler, io.LimitReader(zeroReader{}, 64<<20))
	filler.Close()

	_, err := m.Acquire(context.Background(), owner("c"), []Request{{Name: "big", Target: "/d", Pool: "small", Size: 256 << 20}})
	if !errors.Is(err, devices.ErrNoSpace) {
		t.Fatalf("acquire on a full pool: %v, want ErrNoSpace", err)
	}
	entries, _ := os.ReadDir(poolDir)
	for _, e := range entries {
		if e.Name() != "filler" && e.Name() != "lost+found" {
			t.Errorf("left in the pool: %s", e.Name())
		}
	}
	if _, err := m.Volume(context.Background(), "default", "big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record left for the failed volume: %v", err)
	}
}

// TestRootFullPoolRefusesToStage: a loop volume whose sparse image could
// still grow is not staged while its pool's filesystem is nearly full (the
// container's writes would turn into I/O errors); it is again once there
// is room. The admin overcommitted the pool on purpose (capacity).
func TestRootFullPoolRefusesToStage(t *testing.T) {
	dev := testLoop(t, 128<<20)
	mustRun(t, "mkfs.ext4", "-q", "-m", "0", dev)
	poolDir := t.TempDir()
	mustRun(t, "mount", dev, poolDir)
	t.Cleanup(func() { exec.Command("umount", "-l", poolDir).Run() })
	m, _ := rootManagerWith(t, fmt.Sprintf("[pools.small]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\ncapacity = \"1Gi\"\n", poolDir))
	r := Request{Name: "thin", Target: "/d", Pool: "small", Size: 96 << 20}
	mustAcquire(t, m, owner("a"), r)
	mustRelease(t, m, "a")

	filler := filepath.Join(poolDir, "filler")
	f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(f, zeroReader{}) // until ENOSPC
	f.Close()
	_, err = m.Acquire(context.Background(), owner("b"), []Request{r})
	if !errors.Is(err, devices.ErrNoSpace) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("staging into a full pool: %v, want ErrNoSpace", err)
	}
	assertNothingStaged(t, m)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, m, owner("c"), r)
	mustRelease(t, m, "c")
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestRootCorruptFilesystemIsNeverReformatted corrupts a volume's
// filesystem: Acquire refuses with ErrCorrupt every time, and the volume
// keeps its filesystem (e2fsck -p may apply its safe fixes; nothing runs
// mkfs).
func TestRootCorruptFilesystemIsNeverReformatted(t *testing.T) {
	m, _ := rootManager(t)
	st := mustAcquire(t, m, owner("w"), req("broken", "/d"))
	writeData(t, st[0].Source, "f", "precious")
	mustRelease(t, m, "w")
	rec, err := m.Volume(context.Background(), "default", "broken")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(rec.Backing, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0}, 1<<20), 4096) // group descriptors, bitmaps, inode table
	f.Close()
	for i := 0; i < 3; i++ {
		_, err := m.Acquire(context.Background(), owner("r"), []Request{req("broken", "/d")})
		if !errors.Is(err, devices.ErrCorrupt) || !strings.Contains(err.Error(), "never reformats") {
			t.Fatalf("acquire of a corrupt volume: %v", err)
		}
	}
	id, err := devices.NewFilesystems().Identify(context.Background(), rec.Backing)
	if err != nil || id.Type != "ext4" || id.UUID != rec.FSUUID {
		t.Fatalf("the corrupt volume's filesystem changed: %+v %v, record UUID %s", id, err, rec.FSUUID)
	}
	rec.Used = true // claimed by a container that did not create it
	if after, _ := m.Volume(context.Background(), "default", "broken"); after != rec {
		t.Fatalf("record changed: %+v", after)
	}
	assertNothingStaged(t, m)
}

// TestRootBlockPool hands out an admin-listed block device: first use
// formats it, the data persists; a listed device that holds a signature
// mooring did not make is refused and never touched.
func TestRootBlockPool(t *testing.T) {
	good, foreign := testLoop(t, 256<<20), testLoop(t, 64<<20)
	mustRun(t, "mkswap", foreign)
	foreignSum := fileSum(t, foreign)
	m, _ := rootManagerWith(t, fmt.Sprintf("[pools.disks]\ndriver = \"block\"\ndevices = [%q]\ntenants = [\"*\"]\n[pools.dirty]\ndriver = \"block\"\ndevices = [%q]\ntenants = [\"*\"]\n", good, foreign))

	st := mustAcquire(t, m, owner("a"), Request{Name: "db", Target: "/db", Pool: "disks", Size: 128 << 20})
	writeData(t, st[0].Source, "f", "on a block device")
	mustRelease(t, m, "a")
	st = mustAcquire(t, m, owner("b"), Request{Name: "db", Target: "/db", Pool: "disks", Size: 128 << 20})
	if got := readData(t, st[0].Source, "f"); got != "on a block device" {
		t.Fatalf("read %q", got)
	}
	mustRelease(t, m, "b")

	_, err := m.Acquire(context.Background(), owner("c"), []Request{{Name: "x", Target: "/x", Pool: "dirty", Size: 32 << 20}})
	if !errors.Is(err, devices.ErrNotOurs) {
		t.Fatalf("foreign device: %v, want ErrNotOurs", err)
	}
	if fileSum(t, foreign) != foreignSum {
		t.Fatal("the foreign device was written")
	}
	// Removing a block volume forgets it; the device's data stays.
	if err := m.Remove(context.Background(), "default", "db"); err != nil {
		t.Fatal(err)
	}
}

// TestRootIdempotent repeats each lifecycle operation ten times (the CSI
// sanity rule): the result is the same as doing it once.
func TestRootIdempotent(t *testing.T) {
	m, _ := rootManager(t)
	ctx := context.Background()
	var first []Staged
	for i := 0; i < 10; i++ {
		st := mustAcquire(t, m, owner("c"), req("v", "/v"))
		if first == nil {
			first = st
			writeData(t, st[0].Source, "f", "once")
		}
		if st[0] != first[0] {
			t.Fatalf("acquire %d returned %+v, first %+v", i, st[0], first[0])
		}
	}
	if atts, _ := m.Attachments(); len(atts) != 1 {
		t.Fatalf("%d claims after 10 acquires", len(atts))
	}
	for i := 0; i < 10; i++ {
		rep, err := m.Reconcile(ctx, func(Owner) bool { return true })
		if err != nil || len(rep.Released) != 0 || rep.Kept != 1 {
			t.Fatalf("reconcile %d: %+v %v", i, rep, err)
		}
	}
	for i := 0; i < 10; i++ {
		mustRelease(t, m, "c")
	}
	for i := 0; i < 10; i++ {
		if _, err := m.Create(ctx, "default", req("v", "/v")); !errors.Is(err, ErrExists) {
			t.Fatalf("create %d of an existing volume: %v", i, err)
		}
	}
	st := mustAcquire(t, m, owner("d"), req("v", "/v"))
	if got := readData(t, st[0].Source, "f"); got != "once" {
		t.Fatalf("data %q", got)
	}
	mustRelease(t, m, "d")
	for i := 0; i < 10; i++ {
		err := m.Remove(ctx, "default", "v")
		if (i == 0) != (err == nil) || (i > 0 && !errors.Is(err, ErrNotFound)) {
			t.Fatalf("remove %d: %v", i, err)
		}
	}
}

// TestRootHostReboot drops every loop device and mount of the journal and
// wipes the run dir, as a reboot would: gc and the next Acquire recover.
func TestRootHostReboot(t *testing.T) {
	m, _ := rootManager(t)
	st := mustAcquire(t, m, owner("before-reboot"), req("r", "/r"))
	writeData(t, st[0].Source, "f", "survives")
	// The "reboot": unmount, detach, wipe /run; the claim stays in the
	// journal and its owner (a process that no longer exists) is gone.
	mustRun(t, "umount", st[0].Source)
	rec, _ := m.Volume(context.Background(), "default", "r")
	loops, _ := devices.NewLoops().List(context.Background(), loop.Tag(rec.ID))
	for _, l := range loops {
		devices.NewLoops().Detach(context.Background(), l.Path, l.Tag)
	}
	if err := os.RemoveAll(m.cfg.RunDir); err != nil {
		t.Fatal(err)
	}
	gone := owner("before-reboot")
	gone.PID, gone.PIDStart = 1<<22-1, 1
	atts, _ := m.Attachments()
	atts[0].Owner = gone
	if err := m.j.writeAttachment(atts[0]); err != nil {
		t.Fatal(err)
	}

	rep, err := m.Reconcile(context.Background(), OwnerAlive)
	if err != nil || len(rep.Released) != 1 {
		t.Fatalf("gc after reboot: %+v %v", rep, err)
	}
	st = mustAcquire(t, m, owner("after-reboot"), req("r", "/r"))
	if got := readData(t, st[0].Source, "f"); got != "survives" {
		t.Fatalf("data after reboot: %q", got)
	}
	mustRelease(t, m, "after-reboot")
}
