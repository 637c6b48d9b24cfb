package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/faultydev"
)

// TestUndoIsBounded: the undo of a failed Acquire runs past the caller's
// cancellation but with a deadline of its own.
func TestUndoIsBounded(t *testing.T) {
	m, k := newTestManager(t)
	k.ProbeErr = errors.New("probe failed")
	if _, err := m.Acquire(context.Background(), owner("c"), []Request{req("v", "/v")}); err == nil {
		t.Fatal("acquire with a failing probe succeeded")
	}
	if k.UndoWithoutDeadline != 0 {
		t.Fatalf("%d undo steps ran without a deadline", k.UndoWithoutDeadline)
	}
	assertClean(t, m, k)
}

// TestCheckOnlyWhenNotClean: a filesystem whose superblock says it was
// cleanly unmounted is mounted without running fsck; one that records
// errors is checked before the mount.
func TestCheckOnlyWhenNotClean(t *testing.T) {
	m, k := newTestManager(t)
	for i := 0; i < 3; i++ {
		mustAcquire(t, m, owner("c"), req("v", "/v"))
		mustRelease(t, m, "c")
	}
	if k.Checks != 0 {
		t.Fatalf("%d checks of a clean filesystem", k.Checks)
	}
	rec, _ := m.Volume(context.Background(), "default", "v")
	k.Corrupt[rec.Backing] = true
	if _, err := m.Acquire(context.Background(), owner("c"), []Request{req("v", "/v")}); !errors.Is(err, devices.ErrCorrupt) {
		t.Fatalf("acquire of a filesystem with errors: %v, want ErrCorrupt", err)
	}
	if k.Checks != 1 {
		t.Fatalf("%d checks of a filesystem with errors, want 1", k.Checks)
	}
}

// TestRootBlockPoolRefusesUnreadableDevice: a listed device whose head
// fails to read probes as "nothing found" in blkid; Acquire refuses it and
// nothing is written to it.
func TestRootBlockPoolRefusesUnreadableDevice(t *testing.T) {
	dev := faultydev.New(t, 64<<20, 1<<20)
	m, _ := rootManagerWith(t, fmt.Sprintf("[pools.bad]\ndriver = \"block\"\ndevices = [%q]\ncreate_on_demand = true\n", dev.Path))
	_, err := m.Acquire(context.Background(), owner("c"), []Request{{Name: "x", Target: "/x", Pool: "bad", Size: 32 << 20}})
	if !errors.Is(err, devices.ErrUnreadable) {
		t.Fatalf("acquire on an unreadable device: %v, want ErrUnreadable", err)
	}
	if n := dev.Writes(); n != 0 {
		t.Fatalf("%d writes reached the unreadable device", n)
	}
}

// TestRootBlockPoolRefusesUnzeroedDevice: a listed device with data blkid
// cannot name in its first or last MiB is refused on first use and left
// byte for byte as it was.
func TestRootBlockPoolRefusesUnzeroedDevice(t *testing.T) {
	for _, at := range []int64{200 << 10, 64<<20 - 4096} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			dev := testLoop(t, 64<<20)
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte(strings.Repeat("tenant data ", 100)), at); err != nil {
				t.Fatal(err)
			}
			f.Sync()
			f.Close()
			before := fileSum(t, dev)
			m, _ := rootManagerWith(t, fmt.Sprintf("[pools.used]\ndriver = \"block\"\ndevices = [%q]\ncreate_on_demand = true\n", dev))
			_, err = m.Acquire(context.Background(), owner("c"), []Request{{Name: "x", Target: "/x", Pool: "used", Size: 32 << 20}})
			if !errors.Is(err, devices.ErrNotOurs) || !strings.Contains(err.Error(), "not zeroed") {
				t.Fatalf("acquire on a device with data: %v, want ErrNotOurs (not zeroed)", err)
			}
			if fileSum(t, dev) != before {
				t.Fatal("the device was written")
			}
		})
	}
}

// TestRootRepairRefusedUnderShortDeadline: a volume whose filesystem needs
// e2fsck is refused before e2fsck starts when the caller's deadline is too
// short (the NRI case), untouched; with time enough it is checked, mounted
// and its data is there.
func TestRootRepairRefusedUnderShortDeadline(t *testing.T) {
	m, _ := rootManager(t)
	small := Request{Name: "v", Target: "/v", Size: 64 << 20}
	st := mustAcquire(t, m, owner("w"), small)
	writeData(t, st[0].Source, "f", "kept")
	mustRelease(t, m, "w")
	rec, _ := m.Volume(context.Background(), "default", "v")
	mustRun(t, "tune2fs", "-E", "force_fsck", rec.Backing)
	before := fileSum(t, rec.Backing)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := m.Acquire(ctx, owner("nri"), []Request{small})
	if !errors.Is(err, devices.ErrNoTime) {
		t.Fatalf("acquire under a short deadline: %v, want ErrNoTime", err)
	}
	if fileSum(t, rec.Backing) != before {
		t.Fatal("the refused acquire changed the image")
	}
	st = mustAcquire(t, m, owner("hook"), small)
	if got := readData(t, st[0].Source, "f"); got != "kept" {
		t.Fatalf("data after the check: %q", got)
	}
	mustRelease(t, m, "hook")
}
