package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/devices"
)

// slowData is a DataOps whose copy never finishes on its own; it counts
// freezes and thaws.
type slowData struct {
	devices.DataOps
	freezes, thaws atomic.Int32
}

type slowFrozen struct{ d *slowData }

func (z slowFrozen) Thaw() error { z.d.thaws.Add(1); return nil }

func (d *slowData) Freeze(string) (devices.Frozen, error) {
	d.freezes.Add(1)
	return slowFrozen{d}, nil
}

func (d *slowData) CopyImage(ctx context.Context, _, _ *os.File) (devices.CopyMethod, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

// TestSnapshotFreezeIsBounded: a copy that outlasts maxFreeze is
// abandoned, the filesystem is thawed, and nothing of the snapshot stays.
func TestSnapshotFreezeIsBounded(t *testing.T) {
	m, _ := newTestManager(t)
	data := &slowData{}
	m.dev.Data = data
	old := maxFreeze
	maxFreeze = 20 * time.Millisecond
	t.Cleanup(func() { maxFreeze = old })
	mustAcquire(t, m, owner("c"), req("db", "/d"))
	_, err := m.Snapshot(context.Background(), "default", "db", "s")
	if err == nil || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("snapshot with a stuck copy: %v", err)
	}
	if data.freezes.Load() != 1 || data.thaws.Load() < 1 {
		t.Fatalf("freezes %d, thaws %d", data.freezes.Load(), data.thaws.Load())
	}
	if snaps, _ := m.Snapshots(context.Background(), "default", "db"); len(snaps) != 0 {
		t.Fatalf("snapshot records left: %+v", snaps)
	}
	rec, _ := m.Volume(context.Background(), "default", "db")
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(rec.Backing), "*@*")); len(left) > 0 {
		t.Fatalf("snapshot files left: %v", left)
	}
	mustRelease(t, m, "c")
}

// TestDataServicesRefusals: block pools, shrinking, bad names.
func TestDataServicesRefusals(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	mustAcquire(t, m, owner("c"), Request{Name: "disk", Target: "/d", Pool: "disks"})
	mustRelease(t, m, "c")
	for name, err := range map[string]error{
		"resize":   func() error { _, err := m.Resize(ctx, "default", "disk", 4<<30); return err }(),
		"snapshot": func() error { _, err := m.Snapshot(ctx, "default", "disk", "s"); return err }(),
		"export":   m.Export(ctx, "default", "disk", "", nil, nil),
	} {
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), `driver "block"`) {
			t.Errorf("%s on a block pool: %v", name, err)
		}
	}
	if _, err := m.Snapshot(ctx, "default", "disk", "Bad_Name"); err == nil || !strings.Contains(err.Error(), "snapshot name") {
		t.Errorf("bad snapshot name: %v", err)
	}
	mustAcquire(t, m, owner("c"), req("loop", "/d"))
	mustRelease(t, m, "c")
	if _, err := m.Resize(ctx, "default", "loop", 1<<20); !errors.Is(err, ErrShrink) || !strings.Contains(err.Error(), "only grows") {
		t.Errorf("shrink: %v", err)
	}
	if _, err := m.Clone(ctx, "default", Request{Name: "loop2", From: "loop@none"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("clone of a missing snapshot: %v", err)
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]string{
		nil: "", ErrInUse: "in_use", devices.ErrNoSpace: "no_space",
		context.DeadlineExceeded: "timeout", errors.New("x"): "other",
	} {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestRemoveForgetsTheLastError: a volume made later under a removed
// volume's name does not inherit its last error.
func TestRemoveForgetsTheLastError(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	mustAcquire(t, m, owner("c"), req("db", "/d"))
	m.noteError(ctx, "default", "db", "acquire", errors.New("boom"))
	if e, _ := m.lastError("default", "db"); e == nil {
		t.Fatal("no last error recorded")
	}
	if err := m.Release(ctx, owner("c")); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "default", "db"); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, m, owner("c2"), req("db", "/d"))
	if e, err := m.lastError("default", "db"); e != nil || err != nil {
		t.Fatalf("the new volume has last error %+v, %v", e, err)
	}
}
