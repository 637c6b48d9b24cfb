package volume

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/devices"
)

func blockReq(name, target string) Request {
	return Request{Name: name, Target: target, Mode: annotations.ModeBlock}
}

func TestBlockModeAttachesWithoutFilesystem(t *testing.T) {
	m, k := newTestManager(t)
	a := mustAcquire(t, m, owner("c1"), blockReq("raw", "/disk"))
	b := mustAcquire(t, m, owner("c2"), Request{Name: "raw", Target: "/ro", Mode: annotations.ModeBlock, ReadOnly: true})
	if k.Formats != 0 || k.Checks != 0 || k.MountCount() != 0 {
		t.Fatalf("formats=%d checks=%d mounts=%d: a raw block volume is never formatted, checked or mounted", k.Formats, k.Checks, k.MountCount())
	}
	if a[0].Block == nil || a[0].Source != "" || a[0].Block.Major != 7 {
		t.Fatalf("staged = %+v, want a loop device and no staging source", a[0])
	}
	if *a[0].Block != *b[0].Block || !b[0].ReadOnly || k.Attaches != 1 {
		t.Fatalf("shared: %+v vs %+v, %d attaches", a[0].Block, b[0].Block, k.Attaches)
	}
	// No mount holds the device: it stays attached after our hold closed.
	if k.AttachedCount() != 1 {
		t.Fatalf("%d devices attached, want 1", k.AttachedCount())
	}
	again := mustAcquire(t, m, owner("c1"), blockReq("raw", "/disk"))
	if *again[0].Block != *a[0].Block {
		t.Fatalf("retry got %+v, want %+v", again[0].Block, a[0].Block)
	}
	mustRelease(t, m, "c1")
	if k.AttachedCount() != 1 {
		t.Fatal("detached while c2 still uses it")
	}
	mustRelease(t, m, "c2")
	assertClean(t, m, k)
	rec, err := m.Volume(context.Background(), "default", "raw")
	if err != nil || !rec.IsBlock() || rec.FS != "" || rec.FSUUID != "" || rec.Formatted {
		t.Fatalf("record = %+v, %v", rec, err)
	}
}

func TestBlockModeIsForLife(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("c1"), blockReq("raw", "/disk"))
	mustAcquire(t, m, owner("c1"), req("fs", "/fs"))
	for _, tc := range []struct {
		r    Request
		want string
	}{
		{req("raw", "/disk"), `default/raw is a raw block volume (mode block), the request asks for a filesystem`},
		{blockReq("fs", "/fs"), `default/fs is a filesystem volume, the request asks for mode block`},
	} {
		_, err := m.Acquire(context.Background(), owner("c2"), []Request{tc.r})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Acquire(%+v) = %v, want one line with %q", tc.r, err, tc.want)
		}
	}
	for _, op := range []func() error{
		func() error { _, err := m.Snapshot(context.Background(), "default", "raw", "s"); return err },
		func() error { _, err := m.Resize(context.Background(), "default", "raw", 2*gib); return err },
	} {
		if err := op(); !errors.Is(err, ErrNotSupported) {
			t.Errorf("data service on a raw block volume: %v, want ErrNotSupported", err)
		}
	}
	mustRelease(t, m, "c1")
	assertClean(t, m, k)
}

func TestBlockModeCrashedStageIsRedone(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("c1"), blockReq("raw", "/disk"))
	// The owner died without a release: gc drops its claim and detaches
	// the device, which no mount would have released.
	rep, err := m.Reconcile(context.Background(), func(Owner) bool { return false })
	if err != nil || len(rep.Released) != 1 {
		t.Fatalf("reconcile: %+v, %v", rep, err)
	}
	assertClean(t, m, k)
	st := mustAcquire(t, m, owner("c2"), blockReq("raw", "/disk"))
	if st[0].Block == nil || k.AttachedCount() != 1 {
		t.Fatalf("re-staged: %+v, %d attached", st[0], k.AttachedCount())
	}
	mustRelease(t, m, "c2")
	assertClean(t, m, k)
}

func TestBlockModePoolDeviceHandedOutOnlyBlank(t *testing.T) {
	m, k := newTestManager(t)
	k.Filesystems["/dev/fake0"] = devices.Probe{Type: "ext4", UUID: "old-tenant"}
	r := Request{Name: "raw", Target: "/disk", Mode: annotations.ModeBlock, Pool: "disks"}
	_, err := m.Acquire(context.Background(), owner("c1"), []Request{r})
	if !errors.Is(err, devices.ErrNotOurs) {
		t.Fatalf("Acquire on a used pool device: %v, want ErrNotOurs", err)
	}
	delete(k.Filesystems, "/dev/fake0")
	st := mustAcquire(t, m, owner("c1"), r)
	if st[0].Block == nil || st[0].Block.Path != "/dev/fake0" || st[0].Block.Major != 8 || st[0].Block.Minor != 16 {
		t.Fatalf("staged = %+v", st[0].Block)
	}
	// The tenant's own data on it later is no reason to refuse.
	k.Filesystems["/dev/fake0"] = devices.Probe{Type: "xfs", UUID: "tenant-made"}
	mustAcquire(t, m, owner("c2"), r)
	mustRelease(t, m, "c1")
	mustRelease(t, m, "c2")
	mustAcquire(t, m, owner("c3"), r)
	mustRelease(t, m, "c3")
	assertClean(t, m, k)
}
