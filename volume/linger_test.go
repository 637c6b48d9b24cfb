package volume

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/volume/volumetest"
)

// setLinger sets the default pool's linger, as a config that says so.
func setLinger(m *Manager, d time.Duration) {
	p := m.cfg.Pools["default"]
	p.Linger = d
	m.cfg.Pools["default"] = p
}

// TestLoweringLingerEndsPeriods: a period ends early when the admin
// lowers the pool's linger ("0s" turns lingering off, for the volumes
// already lingering too), at the next pass (fake devices).
func TestLoweringLingerEndsPeriods(t *testing.T) {
	m, k := newTestManager(t)
	setLinger(m, time.Hour)
	mustAcquire(t, m, owner("a"), req("v", "/d"))
	mustRelease(t, m, "a")
	if next, err := m.EndLingering(context.Background()); err != nil || k.MountCount() != 1 || time.Until(next) < 59*time.Minute {
		t.Fatalf("within the period: next %v, %v, %d mounts; want it staged for an hour", next, err, k.MountCount())
	}
	setLinger(m, 0)
	if next, err := m.EndLingering(context.Background()); err != nil || !next.IsZero() {
		t.Fatalf("after linger 0s: next %v, %v", next, err)
	}
	if l, _ := m.Lingering(); len(l) > 0 || k.MountCount() != 0 || k.AttachedCount() != 0 {
		t.Fatalf("after linger 0s: lingering %+v, %d mounts, %d loops", l, k.MountCount(), k.AttachedCount())
	}
}

// TestLingeringRecordAfterReboot: after a reboot the lingering record
// names a staging that is gone; the next Acquire stages the volume afresh
// (nothing to reuse), and the record, moot under a claim, goes at the end
// of its period while the claim keeps the volume staged.
func TestLingeringRecordAfterReboot(t *testing.T) {
	m, k := newTestManager(t)
	setLinger(m, time.Hour)
	mustAcquire(t, m, owner("before"), req("v", "/v"))
	mustRelease(t, m, "before")
	k2 := volumetest.NewKernel()
	k2.Filesystems = k.Filesystems
	os.RemoveAll(m.cfg.RunDir)
	m2, _ := New(m.cfg, WithDevices(fakeDevices(k2)))

	mustAcquire(t, m2, owner("after"), req("v", "/v"))
	if k2.MountCount() != 1 || k2.AttachedCount() != 1 {
		t.Fatalf("after reboot: %d mounts, %d loops; want the volume staged again", k2.MountCount(), k2.AttachedCount())
	}
	endLingering(t, m2)
	if _, err := m2.EndLingering(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l, _ := m2.Lingering(); len(l) > 0 || k2.MountCount() != 1 {
		t.Fatalf("lingering %+v, %d mounts; want the moot record gone, the claimed volume staged", l, k2.MountCount())
	}
	mustRelease(t, m2, "after")
	endLingering(t, m2)
	if _, err := m2.Reconcile(context.Background(), func(Owner) bool { return false }); err != nil {
		t.Fatal(err)
	}
	assertClean(t, m2, k2)
}

// TestRawBlockVolumeDoesNotLinger: a raw block volume has no host mount
// to sync and keep; its last release detaches it even where the pool
// lingers (fake devices).
func TestRawBlockVolumeDoesNotLinger(t *testing.T) {
	m, k := newTestManager(t)
	setLinger(m, time.Hour)
	mustAcquire(t, m, owner("c"), blockReq("raw", "/disk"))
	mustRelease(t, m, "c")
	if l, _ := m.Lingering(); len(l) > 0 || k.AttachedCount() != 0 {
		t.Fatalf("lingering %+v, %d devices attached after the last release", l, k.AttachedCount())
	}
}
