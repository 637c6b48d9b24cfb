package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/volume/volumetest"
)

const gib = 1 << 30

// testConfig is a policy with a create-on-demand loop pool "default", a
// pool "fixed" without create-on-demand, a pool "team-a" only tenant "a"
// may use, and a block pool "disks".
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
state_dir = "` + filepath.Join(dir, "state") + `"
run_dir = "` + filepath.Join(dir, "run") + `"
[pools.default]
driver = "loop"
default_size = "1Gi"
max_size = "4Gi"
default_fs = "ext4"
create_on_demand = true
tenants = ["*"]
[pools.fixed]
driver = "loop"
default_size = "1Gi"
max_size = "4Gi"
default_fs = "xfs"
create_on_demand = false
tenants = ["*"]
[pools.team-a]
driver = "loop"
default_size = "1Gi"
max_size = "4Gi"
default_fs = "ext4"
create_on_demand = true
tenants = ["a"]
[pools.disks]
driver = "block"
devices = ["/dev/fake0"]
default_size = "1Gi"
max_size = "4Gi"
default_fs = "ext4"
create_on_demand = true
tenants = ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newTestManager(t *testing.T) (*Manager, *volumetest.Kernel) {
	t.Helper()
	k := volumetest.NewKernel()
	k.Blocks["/dev/fake0"] = volumetest.Block{Major: 8, Minor: 16, Size: 2 * gib}
	m, err := New(testConfig(t), WithDevices(fakeDevices(k)))
	if err != nil {
		t.Fatal(err)
	}
	return m, k
}

// fakeDevices serves every device of the core from k.
func fakeDevices(k *volumetest.Kernel) Devices {
	return Devices{Loops: k, FS: k, Mounts: k, Blocks: k}
}

func owner(id string) Owner { return Owner{ID: id, Tenant: "default", Frontend: "test"} }

func req(name, target string) Request { return annotations.Volume{Name: name, Target: target} }

func mustAcquire(t testing.TB, m *Manager, o Owner, reqs ...Request) []Staged {
	t.Helper()
	st, err := m.Acquire(context.Background(), o, reqs)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", o.ID, err)
	}
	return st
}

func mustRelease(t testing.TB, m *Manager, id string) {
	t.Helper()
	if err := m.Release(context.Background(), owner(id)); err != nil {
		t.Fatalf("Release(%s): %v", id, err)
	}
}

// assertClean checks nothing is attached, mounted or claimed.
func assertClean(t *testing.T, m *Manager, k *volumetest.Kernel) {
	t.Helper()
	if n := k.AttachedCount(); n != 0 {
		t.Errorf("%d loop devices still attached", n)
	}
	if n := k.MountCount(); n != 0 {
		t.Errorf("%d mounts left", n)
	}
	atts, err := m.Attachments()
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 0 {
		t.Errorf("attachments left: %+v", atts)
	}
}

func TestLifecycleFormatsOnceAndKeepsData(t *testing.T) {
	m, k := newTestManager(t)
	st := mustAcquire(t, m, owner("c1"), req("pgdata", "/data"))
	if len(st) != 1 || st[0].Target != "/data" || st[0].Volume != "default/pgdata" {
		t.Fatalf("staged = %+v", st)
	}
	if ok, _ := k.Mounted(st[0].Source); !ok {
		t.Fatal("staging dir not mounted")
	}
	mustRelease(t, m, "c1")
	assertClean(t, m, k)

	st2 := mustAcquire(t, m, owner("c2"), req("pgdata", "/data"))
	if st2[0].VolumeID != st[0].VolumeID {
		t.Errorf("second acquire got volume %s, want %s", st2[0].VolumeID, st[0].VolumeID)
	}
	if k.Formats != 1 {
		t.Errorf("formatted %d times, want 1", k.Formats)
	}
	if k.Checks != 0 {
		t.Errorf("checked %d times, want 0 (the filesystem was cleanly unmounted)", k.Checks)
	}
	mustRelease(t, m, "c2")
	assertClean(t, m, k)

	// State is on disk: a new manager sees the formatted volume.
	m2, err := New(m.cfg, WithDevices(fakeDevices(k)))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m2.Volume(context.Background(), "default", "pgdata")
	if err != nil || !rec.Formatted || rec.FS != "ext4" || rec.Size != gib {
		t.Fatalf("reopened record = %+v, %v", rec, err)
	}
	img, err := os.Stat(rec.Backing)
	if err != nil || img.Mode().Perm() != 0o600 {
		t.Fatalf("image %s: %v, want mode 0600", rec.Backing, err)
	}
}

func TestAcquireIsIdempotentPerOwner(t *testing.T) {
	m, k := newTestManager(t)
	for i := 0; i < 10; i++ {
		mustAcquire(t, m, owner("c1"), req("a", "/a"), req("b", "/b"))
	}
	if k.Attaches != 2 || k.MountCount() != 2 {
		t.Errorf("attaches=%d mounts=%d, want 2 and 2", k.Attaches, k.MountCount())
	}
	atts, _ := m.Attachments()
	if len(atts) != 2 {
		t.Errorf("%d attachments, want 2", len(atts))
	}
	for i := 0; i < 10; i++ {
		mustRelease(t, m, "c1")
	}
	assertClean(t, m, k)
}

func TestSharedVolumeReleasedByLastUser(t *testing.T) {
	m, k := newTestManager(t)
	a := mustAcquire(t, m, owner("c1"), req("shared", "/s"))
	b := mustAcquire(t, m, owner("c2"), Request{Name: "shared", Target: "/elsewhere", ReadOnly: true})
	if a[0].Source != b[0].Source || !b[0].ReadOnly || b[0].Target != "/elsewhere" {
		t.Fatalf("shared staging differs: %+v vs %+v", a, b)
	}
	if k.Attaches != 1 {
		t.Errorf("attached %d times, want 1", k.Attaches)
	}
	mustRelease(t, m, "c1")
	if k.MountCount() != 1 {
		t.Fatal("volume unmounted while c2 still uses it")
	}
	mustRelease(t, m, "c2")
	assertClean(t, m, k)
}

func TestAcquireUndoesItsOwnWorkOnError(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("c1"), req("kept", "/kept"))
	_, err := m.Acquire(context.Background(), owner("c1"), []Request{
		req("kept", "/kept"),
		req("fresh", "/fresh"),
		{Name: "bad", Target: "/bad", Pool: "nope"},
	})
	if !errors.Is(err, config.ErrUnknownPool) {
		t.Fatalf("err = %v, want unknown pool", err)
	}
	// The earlier claim stays; the volume this call created is gone.
	atts, _ := m.Attachments()
	if len(atts) != 1 || atts[0].Volume != "default/kept" {
		t.Errorf("attachments = %+v, want only default/kept", atts)
	}
	if _, err := m.Volume(context.Background(), "default", "fresh"); !errors.Is(err, ErrNotFound) {
		t.Errorf("volume created by the failed call survived: %v", err)
	}
	if k.AttachedCount() != 1 || k.MountCount() != 1 {
		t.Errorf("attached=%d mounts=%d, want 1 and 1", k.AttachedCount(), k.MountCount())
	}
	mustRelease(t, m, "c1")
	assertClean(t, m, k)
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name  string
		owner Owner
		req   Request
		want  error
	}{
		{"unknown pool", owner("c"), Request{Name: "v", Target: "/v", Pool: "nope"}, config.ErrUnknownPool},
		{"tenant not allowed", owner("c"), Request{Name: "v", Target: "/v", Pool: "team-a"}, ErrNotAllowed},
		{"too large", owner("c"), Request{Name: "v", Target: "/v", Size: 5 * gib}, ErrTooLarge},
		{"no create on demand", owner("c"), Request{Name: "v", Target: "/v", Pool: "fixed"}, ErrNoCreate},
		{"bad owner id", Owner{ID: "../x", Tenant: "default", Frontend: "test"}, req("v", "/v"), ErrInvalidOwner},
		{"bad tenant", Owner{ID: "c", Tenant: "A/B", Frontend: "test"}, req("v", "/v"), ErrInvalidOwner},
		{"no front-end", Owner{ID: "c", Tenant: "default"}, req("v", "/v"), ErrInvalidOwner},
		{"front-end with a separator", Owner{ID: "c", Tenant: "default", Frontend: "a/b"}, req("v", "/v"), ErrInvalidOwner},
		{"scope with NUL", Owner{ID: "c", Tenant: "default", Frontend: "test", Scope: "/run/\x00"}, req("v", "/v"), ErrInvalidOwner},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, k := newTestManager(t)
			_, err := m.Acquire(context.Background(), tc.owner, []Request{tc.req})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			assertClean(t, m, k)
			vols, _ := m.Volumes(context.Background())
			if len(vols) != 0 {
				t.Errorf("volumes left: %+v", vols)
			}
		})
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	m, k := newTestManager(t)
	a := mustAcquire(t, m, Owner{ID: "ca", Tenant: "a", Frontend: "test"}, req("db", "/db"))
	b := mustAcquire(t, m, Owner{ID: "cb", Tenant: "b", Frontend: "test"}, req("db", "/db"))
	if a[0].VolumeID == b[0].VolumeID || a[0].Volume != "a/db" || b[0].Volume != "b/db" {
		t.Fatalf("tenants share a volume: %+v %+v", a, b)
	}
	mustRelease(t, m, "ca")
	mustRelease(t, m, "cb")
	assertClean(t, m, k)
}

func TestNeverFormatsWhatItDidNotMake(t *testing.T) {
	t.Run("foreign filesystem on a new volume", func(t *testing.T) {
		m, k := newTestManager(t)
		k.Blocks["/dev/fake0"] = volumetest.Block{Major: 8, Minor: 16, Size: 2 * gib}
		k.Filesystems["/dev/fake0"] = devices.Probe{Type: "ext4", UUID: "someone-elses"}
		_, err := m.Acquire(context.Background(), owner("c"), []Request{{Name: "v", Target: "/v", Pool: "disks"}})
		if !errors.Is(err, devices.ErrNotOurs) {
			t.Fatalf("err = %v, want ErrNotOurs", err)
		}
		if k.Formats != 0 {
			t.Fatal("formatted a foreign device")
		}
		assertClean(t, m, k)
	})
	t.Run("probe failure", func(t *testing.T) {
		m, k := newTestManager(t)
		k.ProbeErr = errors.New("blkid: I/O error")
		if _, err := m.Acquire(context.Background(), owner("c"), []Request{req("v", "/v")}); err == nil {
			t.Fatal("acquired despite a failed probe")
		}
		if k.Formats != 0 {
			t.Fatal("formatted on doubt")
		}
		assertClean(t, m, k)
	})
	t.Run("formatted volume now empty", func(t *testing.T) {
		m, k := newTestManager(t)
		mustAcquire(t, m, owner("c"), req("v", "/v"))
		mustRelease(t, m, "c")
		rec, _ := m.Volume(context.Background(), "default", "v")
		delete(k.Filesystems, rec.Backing)
		_, err := m.Acquire(context.Background(), owner("c"), []Request{req("v", "/v")})
		if !errors.Is(err, ErrNotFormatted) || k.Formats != 1 {
			t.Fatalf("err = %v formats=%d, want ErrNotFormatted and 1", err, k.Formats)
		}
		assertClean(t, m, k)
	})
	t.Run("uuid changed", func(t *testing.T) {
		m, k := newTestManager(t)
		mustAcquire(t, m, owner("c"), req("v", "/v"))
		mustRelease(t, m, "c")
		rec, _ := m.Volume(context.Background(), "default", "v")
		k.Filesystems[rec.Backing] = devices.Probe{Type: "ext4", UUID: "swapped"}
		_, err := m.Acquire(context.Background(), owner("c"), []Request{req("v", "/v")})
		if !errors.Is(err, ErrUUIDMismatch) {
			t.Fatalf("err = %v, want ErrUUIDMismatch", err)
		}
		assertClean(t, m, k)
	})
	t.Run("corrupt filesystem", func(t *testing.T) {
		m, k := newTestManager(t)
		mustAcquire(t, m, owner("c"), req("v", "/v"))
		mustRelease(t, m, "c")
		rec, _ := m.Volume(context.Background(), "default", "v")
		k.Corrupt[rec.Backing] = true
		_, err := m.Acquire(context.Background(), owner("c"), []Request{req("v", "/v")})
		if !errors.Is(err, devices.ErrCorrupt) || k.Formats != 1 {
			t.Fatalf("err = %v formats=%d, want ErrCorrupt and no reformat", err, k.Formats)
		}
		if _, err := m.Volume(context.Background(), "default", "v"); err != nil {
			t.Fatalf("corrupt volume's record was dropped: %v", err)
		}
		assertClean(t, m, k)
	})
}

func TestRemove(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("c"), req("v", "/v"))
	if err := m.Remove(context.Background(), "default", "v"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while attached: %v, want ErrInUse", err)
	}
	mustRelease(t, m, "c")
	rec, _ := m.Volume(context.Background(), "default", "v")
	if err := m.Remove(context.Background(), "default", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rec.Backing); !os.IsNotExist(err) {
		t.Errorf("image survived remove: %v", err)
	}
	if _, err := m.Volume(context.Background(), "default", "v"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record survived remove: %v", err)
	}
	assertClean(t, m, k)
}

func TestCreateThenAcquireFromFixedPool(t *testing.T) {
	m, k := newTestManager(t)
	rec, err := m.Create(context.Background(), "default", Request{Name: "v", Pool: "fixed", Size: 2 * gib})
	if err != nil || rec.FS != "xfs" || rec.Size != 2*gib || rec.Formatted {
		t.Fatalf("Create = %+v, %v", rec, err)
	}
	if _, err := m.Create(context.Background(), "default", Request{Name: "v", Pool: "fixed"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	st := mustAcquire(t, m, owner("c"), req("v", "/v"))
	if st[0].FS != "xfs" || k.Formats != 1 {
		t.Fatalf("staged %+v formats=%d", st, k.Formats)
	}
	if _, err := m.Acquire(context.Background(), owner("c2"), []Request{{Name: "v", Target: "/v", Pool: "default"}}); err == nil {
		t.Fatal("acquired a volume through the wrong pool")
	}
	mustRelease(t, m, "c")
	assertClean(t, m, k)
}

func TestReconcileReleasesDeadOwnersAndOrphans(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("live"), req("a", "/a"))
	mustAcquire(t, m, owner("dead"), req("b", "/b"), req("a", "/a"))
	// An orphan: staged, then the claim vanished (e.g. the record was
	// removed by hand).
	st := mustAcquire(t, m, owner("gone"), req("c", "/c"))
	os.Remove(m.j.attachmentPath(Attachment{VolumeID: st[0].VolumeID, Owner: owner("gone")}))

	rep, err := m.Reconcile(context.Background(), func(o Owner) bool { return o.ID == "live" })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 1 || len(rep.Released) != 2 || len(rep.Unmounted) != 1 {
		t.Errorf("report = %+v", rep)
	}
	if k.MountCount() != 1 || k.AttachedCount() != 1 {
		t.Errorf("mounts=%d attached=%d, want only the live owner's", k.MountCount(), k.AttachedCount())
	}
	// Reconcile is idempotent.
	rep, err = m.Reconcile(context.Background(), func(o Owner) bool { return o.ID == "live" })
	if err != nil || rep.Kept != 1 || len(rep.Released) != 0 || len(rep.Unmounted) != 0 {
		t.Errorf("second reconcile = %+v, %v", rep, err)
	}
	mustRelease(t, m, "live")
	assertClean(t, m, k)
}

func TestRebootRecoversFromJournal(t *testing.T) {
	m, k := newTestManager(t)
	mustAcquire(t, m, owner("before"), req("v", "/v"))
	// Reboot: the kernel forgets every device and mount, the run dir goes.
	k2 := volumetest.NewKernel()
	k2.Filesystems = k.Filesystems
	os.RemoveAll(m.cfg.RunDir)
	m2, _ := New(m.cfg, WithDevices(fakeDevices(k2)))

	mustAcquire(t, m2, owner("after"), req("v", "/v"))
	if k2.MountCount() != 1 || k2.Formats != 0 {
		t.Fatalf("after reboot: mounts=%d formats=%d", k2.MountCount(), k2.Formats)
	}
	if _, err := m2.Reconcile(context.Background(), func(o Owner) bool { return o.ID == "after" }); err != nil {
		t.Fatal(err)
	}
	mustRelease(t, m2, "after")
	assertClean(t, m2, k2)
}

func TestUnrelatedVolumesInParallel(t *testing.T) {
	m, k := newTestManager(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := string(rune('a' + i))
			if _, err := m.Acquire(context.Background(), owner("c"+id), []Request{req("v"+id, "/v")}); err != nil {
				errs <- err
				return
			}
			errs <- m.Release(context.Background(), owner("c"+id))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	assertClean(t, m, k)
}

func TestOwnerAlive(t *testing.T) {
	start, err := ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !OwnerAlive(Owner{PID: os.Getpid(), PIDStart: start}) {
		t.Error("this process is not alive")
	}
	if OwnerAlive(Owner{PID: os.Getpid(), PIDStart: start + 1}) {
		t.Error("pid reuse not detected")
	}
	if OwnerAlive(Owner{StatePath: filepath.Join(t.TempDir(), "gone")}) {
		t.Error("missing state file counted as alive")
	}
}
