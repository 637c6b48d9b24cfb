package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/failpoint"
)

// dataOpHelperEnv makes the test binary run one data operation on volume
// "crash" ("resize" by 256 MiB, or "snapshot" s1) that a failpoint kills.
const dataOpHelperEnv = "MOORING_TEST_DATAOP_HELPER"

func dataOpHelper(op string) int {
	m, err := helperManager()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ctx := context.Background()
	switch op {
	case "resize":
		var rec VolumeRecord
		if rec, err = m.Volume(context.Background(), "default", "crash"); err == nil {
			_, err = m.Resize(ctx, "default", "crash", rec.Size+256<<20)
		}
	case "snapshot":
		_, err = m.Snapshot(ctx, "default", "crash", "s1")
	default:
		err = fmt.Errorf("unknown helper op %q", op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	return 0
}

// runKilled runs the helper for op and checks the failpoint killed it.
func runKilled(t *testing.T, cfgPath, op, step string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dataOpHelperEnv+"="+op, helperConfigEnv+"="+cfgPath, failpoint.EnvVar+"="+step)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed at %s: %v\n%s", step, err, out)
	}
}

func statfs(t testing.TB, dir string) unix.Statfs_t {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func capacity(t testing.TB, dir string) int64 {
	st := statfs(t, dir)
	return int64(st.Blocks) * st.Bsize
}

// TestRootResize grows a volume of each filesystem online (while staged)
// and offline (seen at the next Acquire), and refuses to shrink or to pass
// the pool's max_size.
func TestRootResize(t *testing.T) {
	for _, fs := range []string{devices.FSExt4, devices.FSXFS, devices.FSBtrfs} {
		t.Run(fs, func(t *testing.T) {
			m, _ := rootManager(t)
			ctx := context.Background()
			r := Request{Name: "grow", Target: "/d", FS: fs, Size: 320 << 20}
			st := mustAcquire(t, m, owner("c"), r)
			writeData(t, st[0].Source, "f", "before")
			before := capacity(t, st[0].Source)
			rec, err := m.Resize(ctx, "default", "grow", 640<<20)
			if err != nil {
				t.Fatal(err)
			}
			online := capacity(t, st[0].Source)
			if fs == devices.FSExt4 && !haveCapSysResource(t) {
				// The kernel refuses ext4's online grow without
				// CAP_SYS_RESOURCE: it stays pending for the next attach.
				if !rec.GrowPending || online != before {
					t.Fatalf("ext4 without CAP_SYS_RESOURCE: capacity %d -> %d, record %+v", before, online, rec.DataState)
				}
			} else if rec.GrowPending || online < before+250<<20 {
				t.Fatalf("online grow: capacity %d -> %d, record %+v", before, online, rec.DataState)
			}
			if _, err := m.Resize(ctx, "default", "grow", 320<<20); !errors.Is(err, ErrShrink) {
				t.Fatalf("shrink: %v", err)
			}
			if _, err := m.Resize(ctx, "default", "grow", 9<<30); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("over max_size: %v", err)
			}
			mustRelease(t, m, "c")

			rec, err = m.Resize(ctx, "default", "grow", 1<<30)
			if err != nil || !rec.GrowPending {
				t.Fatalf("offline grow: %v, %+v", err, rec.DataState)
			}
			st = mustAcquire(t, m, owner("c2"), r)
			if c := capacity(t, st[0].Source); c < before+600<<20 {
				t.Fatalf("offline grow: capacity %d after the next Acquire, was %d", c, online)
			}
			if got := readData(t, st[0].Source, "f"); got != "before" {
				t.Fatalf("data after grow: %q", got)
			}
			if rec, _ := m.Volume(context.Background(), "default", "grow"); rec.GrowPending {
				t.Fatal("grow still pending after Acquire")
			}
			mustRelease(t, m, "c2")
		})
	}
}

// TestRootGrowOnRequest: a request for a larger size grows the volume at
// Acquire only where the pool says grow_on_request, also while another
// container uses it.
func TestRootGrowOnRequest(t *testing.T) {
	m, _ := rootManagerWith(t, `[pools.elastic]
driver = "loop"
max_size = "2Gi"
grow_on_request = true
tenants = ["*"]
`)
	small := Request{Name: "app", Target: "/d", Pool: "elastic", Size: 320 << 20, FS: devices.FSXFS}
	st := mustAcquire(t, m, owner("a"), small)
	before := capacity(t, st[0].Source)
	big := small
	big.Size = 640 << 20
	mustAcquire(t, m, owner("b"), big)
	if c := capacity(t, st[0].Source); c < before+200<<20 {
		t.Fatalf("grow on request while shared: %d -> %d", before, c)
	}
	huge := small
	huge.Size = 4 << 30
	if _, err := m.Acquire(context.Background(), owner("x"), []Request{huge}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("grow on request over max_size: %v", err)
	}
	mustRelease(t, m, "a")
	mustRelease(t, m, "b")

	// The default pool does not grow on request.
	r := Request{Name: "fixed", Target: "/d", Size: 256 << 20}
	mustAcquire(t, m, owner("c"), r)
	mustRelease(t, m, "c")
	r.Size = 512 << 20
	mustAcquire(t, m, owner("c"), r)
	mustRelease(t, m, "c")
	if rec, _ := m.Volume(context.Background(), "default", "fixed"); rec.Size != 256<<20 {
		t.Fatalf("grown without grow_on_request: %d", rec.Size)
	}
}

// TestRootResizeCrash kills a resize between "image grown" and
// "filesystem grown": gc finishes it for a staged volume, the next
// Acquire for a detached one.
func TestRootResizeCrash(t *testing.T) {
	m, cfgPath := rootManager(t)
	r := Request{Name: "crash", Target: "/d", Size: 320 << 20, FS: devices.FSXFS}
	st := mustAcquire(t, m, owner("live"), r)
	before := capacity(t, st[0].Source)
	runKilled(t, cfgPath, "resize", "resize:capacity-set")
	if rec, _ := m.Volume(context.Background(), "default", "crash"); !rec.GrowPending || capacity(t, st[0].Source) != before {
		t.Fatalf("after the crash: %+v, capacity %d (was %d)", rec.DataState, capacity(t, st[0].Source), before)
	}
	if _, err := m.Reconcile(context.Background(), func(o Owner) bool { return o.ID == "live" }); err != nil {
		t.Fatal(err)
	}
	if rec, _ := m.Volume(context.Background(), "default", "crash"); rec.GrowPending || capacity(t, st[0].Source) < before+250<<20 {
		t.Fatalf("gc did not finish the grow: %+v, capacity %d", rec.DataState, capacity(t, st[0].Source))
	}
	mustRelease(t, m, "live")

	// Detached: killed right after the image grew; the next Acquire grows
	// the filesystem.
	runKilled(t, cfgPath, "resize", "resize:image-grown")
	if r := rec(t, m, "crash"); !r.GrowPending || r.Size != 832<<20 {
		t.Fatalf("after the crash: %+v", r)
	}
	st = mustAcquire(t, m, owner("next"), r)
	if c := capacity(t, st[0].Source); c < 750<<20 || rec(t, m, "crash").GrowPending {
		t.Fatalf("next Acquire did not finish the grow: capacity %d", c)
	}
	mustRelease(t, m, "next")
}

func rec(t testing.TB, m *Manager, name string) VolumeRecord {
	t.Helper()
	r, err := m.Volume(context.Background(), "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// haveCapSysResource reports whether this process may grow a mounted
// ext4 (the kernel asks for CAP_SYS_RESOURCE).
func haveCapSysResource(t testing.TB) bool {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
