package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/backends/loop"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// Environment of the crash helper: the test binary re-executed to run one
// Acquire that a failpoint kills.
const (
	helperEnv       = "MOORING_TEST_ACQUIRE_HELPER"
	helperConfigEnv = "MOORING_TEST_CONFIG"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(acquireHelper())
	}
	if op := os.Getenv(dataOpHelperEnv); op != "" {
		os.Exit(dataOpHelper(op))
	}
	os.Exit(m.Run())
}

// helperManager is the Manager of a re-executed crash helper, on the
// config the test passes in helperConfigEnv.
func helperManager() (*Manager, error) {
	cfg, err := config.Load(os.Getenv(helperConfigEnv))
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// acquireHelper acquires and releases volume "crash" for owner
// "crash-owner" with its own pid as identity; MOORING_FAILPOINT kills it
// on the way.
func acquireHelper() int {
	m, err := helperManager()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	start, _ := ProcessStart(os.Getpid())
	o := Owner{ID: "crash-owner", Tenant: "default", Frontend: "test", PID: os.Getpid(), PIDStart: start}
	if _, err := m.Acquire(context.Background(), o, []Request{req("crash", "/data")}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	if err := m.Release(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 5
	}
	return 0
}

// rootManager returns a Manager on real devices with scratch state and run
// dirs, and registers a cleanup that releases everything and checks that
// no device, mount or claim of this state dir is left.
func rootManager(t testing.TB) (*Manager, string) {
	t.Helper()
	return rootManagerWith(t, "")
}

// rootManagerWith is rootManager with more pools (TOML tables).
func rootManagerWith(t testing.TB, pools string) (*Manager, string) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"blkid", "mkfs.ext4", "e2fsck", "mkfs.xfs", "xfs_repair", "mkfs.btrfs", "btrfs"} {
		testenv.RequireTool(t, tool)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	toml := fmt.Sprintf(`
state_dir = %q
run_dir = %q
[pools.default]
driver = "loop"
default_size = "1Gi"
max_size = "8Gi"
default_fs = "ext4"
create_on_demand = true
tenants = ["*"]
%s
`, filepath.Join(dir, "state"), filepath.Join(dir, "run"), pools)
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		endLingering(t, m)
		if _, err := m.Reconcile(context.Background(), func(Owner) bool { return false }); err != nil {
			t.Errorf("cleanup reconcile: %v", err)
		}
		assertNothingStaged(t, m)
	})
	return m, path
}

// assertNothingStaged checks that no loop device carries one of this
// journal's volume ids, nothing is mounted under the run dir and no claim
// is recorded.
func assertNothingStaged(t testing.TB, m *Manager) {
	t.Helper()
	vols, err := m.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Autoclear detaches after the last close, asynchronously, and btrfs
	// lets its device go a moment after umount: allow a few seconds.
	var left []string
	for range 50 {
		loops, err := m.dev.Loops.List(context.Background(), devices.TagPrefix)
		if err != nil {
			t.Fatal(err)
		}
		left = left[:0]
		for _, v := range vols {
			for _, l := range loops {
				if l.Tag == loop.Tag(v.ID) {
					left = append(left, fmt.Sprintf("volume %s still attached at %s", v.Key(), l.Path))
				}
			}
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, l := range left {
		t.Error(l)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), " "+m.cfg.RunDir+"/") {
		t.Errorf("mounts left under %s", m.cfg.RunDir)
	}
	atts, err := m.Attachments()
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) > 0 {
		t.Errorf("claims left: %+v", atts)
	}
}

func writeData(t testing.TB, dir, name, data string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readData(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRootDataOutlivesOwners(t *testing.T) {
	for _, fs := range []string{devices.FSExt4, devices.FSXFS, devices.FSBtrfs} {
		t.Run(fs, func(t *testing.T) {
			m, _ := rootManager(t)
			r := Request{Name: "data", Target: "/data", FS: fs}
			st := mustAcquire(t, m, owner("first"), r)
			writeData(t, st[0].Source, "hello", "kept across owners")
			mustRelease(t, m, "first")
			assertNothingStaged(t, m)

			st = mustAcquire(t, m, owner("second"), r)
			if got := readData(t, st[0].Source, "hello"); got != "kept across owners" {
				t.Fatalf("read %q", got)
			}
			mustRelease(t, m, "second")
		})
	}
}

func TestRootParallelVolumesAndSharing(t *testing.T) {
	m, _ := rootManager(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = m.Acquire(context.Background(), owner(fmt.Sprintf("p%d", i)), []Request{req(fmt.Sprintf("par%d", i), "/d")})
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	a := mustAcquire(t, m, owner("s1"), req("shared", "/s"))
	writeData(t, a[0].Source, "f", "shared")
	b := mustAcquire(t, m, owner("s2"), req("shared", "/s"))
	mustRelease(t, m, "s1")
	if got := readData(t, b[0].Source, "f"); got != "shared" {
		t.Fatalf("second owner reads %q after the first left", got)
	}
	for _, o := range []string{"s2", "p0", "p1"} {
		mustRelease(t, m, o)
	}
	assertNothingStaged(t, m)
}

// TestRootCrashDuringAcquire kills a helper process with SIGKILL at each
// step of Acquire and Release; Reconcile must then leave no device, mount or record,
// the data written before must be intact, and the volume must work again.
func TestRootCrashDuringAcquire(t *testing.T) {
	testenv.Require(t, failpoint.Enabled, "failpoints compiled in (go test -tags failpoints, as make test does)")
	m, cfgPath := rootManager(t)
	st := mustAcquire(t, m, owner("setup"), req("crash", "/data"))
	writeData(t, st[0].Source, "before", "synced before the crash")
	mustRelease(t, m, "setup")

	for _, step := range []string{"acquire:attaching", "acquire:attached", "acquire:prepared", "acquire:mounted", "release:releasing"} {
		t.Run(step, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", helperConfigEnv+"="+cfgPath, failpoint.EnvVar+"="+step)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed at %s: %v\n%s", step, err, out)
			}
			rep, err := m.Reconcile(context.Background(), OwnerAlive)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("reconcile after crash at %s: %+v", step, rep)
			assertNothingStaged(t, m)

			st := mustAcquire(t, m, owner("after"), req("crash", "/data"))
			if got := readData(t, st[0].Source, "before"); got != "synced before the crash" {
				t.Fatalf("data after crash at %s: %q", step, got)
			}
			mustRelease(t, m, "after")
		})
	}
}

func TestRootRemove(t *testing.T) {
	m, _ := rootManager(t)
	mustAcquire(t, m, owner("c"), req("gone", "/g"))
	if err := m.Remove(context.Background(), "default", "gone"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while attached: %v", err)
	}
	mustRelease(t, m, "c")
	if err := m.Remove(context.Background(), "default", "gone"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkAcquireReleaseExisting measures staging an existing, formatted
// 1 GiB ext4 volume and releasing it (attach, probe, fsck, mount; unmount,
// detach).
func BenchmarkAcquireReleaseExisting(b *testing.B) {
	m, _ := rootManager(b)
	mustAcquire(b, m, owner("warm"), req("bench", "/b"))
	mustRelease(b, m, "warm")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustAcquire(b, m, owner("bench"), req("bench", "/b"))
		mustRelease(b, m, "bench")
	}
}

// BenchmarkAcquireReleaseFirstUse measures creating, formatting (1 GiB
// ext4), mounting and releasing a new volume.
func BenchmarkAcquireReleaseFirstUse(b *testing.B) {
	m, _ := rootManager(b)
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("first%d", i)
		mustAcquire(b, m, owner("bench"), req(name, "/b"))
		mustRelease(b, m, "bench")
		b.StopTimer()
		if err := m.Remove(context.Background(), "default", name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
