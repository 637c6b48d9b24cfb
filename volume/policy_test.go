package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/vocab"
	"github.com/mooring-dev/mooring/volume/volumetest"
)

// policyManager is a Manager on the fake kernel with pools given as TOML
// tables, and block devices /dev/fake0../dev/fake3 of 1 GiB.
func policyManager(t *testing.T, pools string) *Manager {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf("state_dir = %q\nrun_dir = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "run")) + pools))
	if err != nil {
		t.Fatal(err)
	}
	k := volumetest.NewKernel()
	for i := range 4 {
		k.Blocks[fmt.Sprintf("/dev/fake%d", i)] = volumetest.Block{Major: 8, Minor: uint32(16 * i), Size: gib}
	}
	m, err := New(cfg, WithDevices(fakeDevices(k)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const quotaPools = `
[pools.default]
driver = "loop"
tenants = ["*"]
capacity = "3Gi"
default_size = "1Gi"
filesystems = ["ext4", "xfs"]
[pools.quota]
driver = "loop"
tenants = ["*"]
max_volumes = 2
max_bytes = "3Gi"
[pools.disks]
driver = "block"
tenants = ["*"]
devices = ["/dev/fake0", "/dev/fake1", "/dev/fake2", "/dev/fake3"]
`

// assertNoFiles fails when anything exists under dir but empty
// directories: a refused request must leave no lock file, record or image
// behind.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// assertAbsent fails when dir exists.
func assertAbsent(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (%v); a refused request must not create it", dir, err)
	}
}

// TestRefusedRequestsLeaveNothing asks for 50 volumes the policy refuses
// (a pool the tenant may not use, a pool that does not create on demand,
// an unknown pool, a filesystem the pool does not allow, a pool at its
// capacity): no lock file, record or directory may appear.
func TestRefusedRequestsLeaveNothing(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	pools := []string{"team-a", "fixed", "nope"}
	defer func() {
		assertAbsent(t, m.cfg.RunDir)
		assertAbsent(t, m.cfg.StateDir)
	}()
	full := policyManager(t, quotaPools)
	for i := range 50 {
		r := req(fmt.Sprintf("refused%d", i), "/d")
		r.Size = 4 * gib
		if i%2 == 0 {
			r.Size, r.FS = 0, "btrfs"
		}
		if _, err := full.Acquire(ctx, owner("c"), []Request{r}); err == nil {
			t.Fatalf("request %d (%+v) was not refused", i, r)
		}
	}
	assertAbsent(t, full.cfg.RunDir)
	assertAbsent(t, full.cfg.StateDir)
	for i := range 50 {
		r := req(fmt.Sprintf("refused%d", i), "/d")
		r.Pool = pools[i%len(pools)]
		if _, err := m.Acquire(ctx, owner("c"), []Request{r}); err == nil {
			t.Fatalf("request %d in pool %s was not refused", i, r.Pool)
		}
		if r.Pool == "fixed" {
			continue // mooring volume create may create there
		}
		if _, err := m.Create(ctx, "default", r); err == nil {
			t.Fatalf("create %d in pool %s was not refused", i, r.Pool)
		}
	}
}

// TestCapacityAndQuotas: a pool's capacity bounds the sum of its volumes'
// sizes; a tenant's max_volumes and max_bytes bound what it holds in a
// pool; a tenant of a shared block pool cannot take every device.
func TestCapacityAndQuotas(t *testing.T) {
	m := policyManager(t, quotaPools)
	ctx := context.Background()
	create := func(tenant, name, pool string, size int64) error {
		_, err := m.Create(ctx, tenant, Request{Name: name, Pool: pool, Size: vocab.Size(size)})
		return err
	}
	for i := range 3 {
		if err := create("a", fmt.Sprintf("v%d", i), "", gib); err != nil {
			t.Fatal(err)
		}
	}
	if err := create("b", "v3", "", 1<<20); !errors.Is(err, devices.ErrNoSpace) || !strings.Contains(err.Error(), "capacity 3Gi") {
		t.Fatalf("create over capacity: %v", err)
	}
	if err := m.Remove(ctx, "a", "v0"); err != nil {
		t.Fatal(err)
	}
	if err := create("b", "v3", "", gib); err != nil {
		t.Fatalf("room freed by rm: %v", err)
	}

	if err := create("a", "q1", "quota", 2*gib); err != nil {
		t.Fatal(err)
	}
	if err := create("a", "q2", "quota", 2*gib); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "max_bytes 3Gi") {
		t.Fatalf("create over max_bytes: %v", err)
	}
	if err := create("a", "q2", "quota", gib); err != nil {
		t.Fatal(err)
	}
	if err := create("a", "q3", "quota", 1<<20); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "max_volumes is 2") {
		t.Fatalf("create over max_volumes: %v", err)
	}
	if err := create("b", "q3", "quota", gib); err != nil {
		t.Fatalf("another tenant's quota is its own: %v", err)
	}

	_, err := m.Acquire(ctx, Owner{ID: "c1", Tenant: "a", Frontend: "test"}, []Request{{Name: "d1", Target: "/d1", Pool: "disks"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Acquire(ctx, Owner{ID: "c2", Tenant: "a", Frontend: "test"}, []Request{{Name: "d2", Target: "/d2", Pool: "disks"}})
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("a tenant takes a second device of a shared block pool: %v", err)
	}
	if _, err := m.Acquire(ctx, Owner{ID: "c3", Tenant: "b", Frontend: "test"}, []Request{{Name: "d1", Target: "/d1", Pool: "disks"}}); err != nil {
		t.Fatalf("the next tenant gets its device: %v", err)
	}
}

// TestFilesystemAllowlist: a tenant cannot ask for a filesystem the pool
// does not allow; the error names the pool and the allowed list.
func TestFilesystemAllowlist(t *testing.T) {
	m := policyManager(t, quotaPools)
	_, err := m.Acquire(context.Background(), owner("c"), []Request{{Name: "b", Target: "/b", FS: "btrfs"}})
	if err == nil || !strings.Contains(err.Error(), `pool "default" allows only ext4, xfs`) {
		t.Fatalf("btrfs in an ext4/xfs pool: %v", err)
	}
	if _, err := m.Acquire(context.Background(), owner("c"), []Request{{Name: "x", Target: "/x", FS: "xfs"}}); err != nil {
		t.Fatal(err)
	}
}

// TestCapacityIsRaceFree creates volumes from many goroutines at once
// (each with its own lock files, as separate processes would): the pool
// never holds more than its capacity.
func TestCapacityIsRaceFree(t *testing.T) {
	m := policyManager(t, quotaPools)
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Create(context.Background(), "default", Request{Name: fmt.Sprintf("r%d", i)})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, devices.ErrNoSpace):
			t.Fatal(err)
		}
	}
	vols, _ := m.Volumes(context.Background())
	if ok != 3 || len(vols) != 3 {
		t.Fatalf("%d creates succeeded, %d volumes; a 3Gi pool holds 3 of 1Gi", ok, len(vols))
	}
	// Creates refused under the lock (their pre-check passed) drop their
	// lock files too.
	locks, _ := filepath.Glob(filepath.Join(m.cfg.RunDir, "locks", "default_*.lock"))
	if len(locks) != 3 {
		t.Fatalf("volume lock files %v, want one per volume", locks)
	}
}

// TestUnsafePoolDirectoryRefused: a pool directory others can write is
// refused before an image is made, with the path and the fix.
func TestUnsafePoolDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o777))
	m := policyManager(t, fmt.Sprintf("[pools.default]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\n", dir))
	_, err := m.Create(context.Background(), "default", req("v", "/v"))
	if err == nil || !strings.Contains(err.Error(), "pool directory "+dir+": writable by group or others (mode 0777); chmod go-w "+dir) {
		t.Fatalf("create in a world-writable pool dir: %v", err)
	}
	assertNoFiles(t, dir)
	assertNoFiles(t, m.cfg.StateDir)
}
