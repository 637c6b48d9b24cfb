package volume

import (
	"context"
	"testing"
	"time"
)

// TestLoweringLingerEndsPeriods: a period ends early when the admin
// lowers the pool's linger ("0s" turns lingering off, for the volumes
// already lingering too), at the next pass (fake devices).
func TestLoweringLingerEndsPeriods(t *testing.T) {
	m, k := newTestManager(t)
	setLinger := func(d time.Duration) {
		p := m.cfg.Pools["default"]
		p.Linger = d
		m.cfg.Pools["default"] = p
	}
	setLinger(time.Hour)
	mustAcquire(t, m, owner("a"), req("v", "/d"))
	mustRelease(t, m, "a")
	if next, err := m.EndLingering(context.Background()); err != nil || k.MountCount() != 1 || time.Until(next) < 59*time.Minute {
		t.Fatalf("within the period: next %v, %v, %d mounts; want it staged for an hour", next, err, k.MountCount())
	}
	setLinger(0)
	if next, err := m.EndLingering(context.Background()); err != nil || !next.IsZero() {
		t.Fatalf("after linger 0s: next %v, %v", next, err)
	}
	if l, _ := m.Lingering(); len(l) > 0 || k.MountCount() != 0 || k.AttachedCount() != 0 {
		t.Fatalf("after linger 0s: lingering %+v, %d mounts, %d loops", l, k.MountCount(), k.AttachedCount())
	}
}
