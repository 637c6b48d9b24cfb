package volume

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/backends/loop"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// lingerPool is the default pool's extra TOML for these tests: a period
// no test outlives, ended by endLingering instead of by waiting.
const lingerPool = `linger = "1h"`

// endLingering makes every lingering period of m's journal end now, as
// if it had passed: tests never wait for a clock.
func endLingering(t testing.TB, m *Manager) {
	t.Helper()
	all, err := m.Lingering()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		l.Until = time.Now().Add(-time.Second)
		if err := m.j.writeLingering(l); err != nil {
			t.Fatal(err)
		}
	}
}

// staging is how a volume is staged on the host right now: the staging
// mount's unique id (never reused, unlike mountinfo's, which a new mount
// may take over) and the loop devices tagged with the volume's id.
type staging struct {
	mountID uint64
	loops   []string
}

func stagingOf(t testing.TB, m *Manager, name string) staging {
	t.Helper()
	rec, err := m.Volume(context.Background(), "default", name)
	if err != nil {
		t.Fatal(err)
	}
	var s staging
	dir := m.stagingDir(rec.ID)
	if mounted, err := mountinfo.Mounted(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	} else if mounted {
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
			t.Fatalf("statx %s: unique mount id not known (%v)", dir, err)
		}
		s.mountID = stx.Mnt_id
	}
	loops, err := m.dev.Loops.List(context.Background(), loop.Tag(rec.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loops {
		s.loops = append(s.loops, l.Path)
	}
	return s
}

func lingeringNames(t testing.TB, m *Manager) []string {
	t.Helper()
	all, err := m.Lingering()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range all {
		out = append(out, l.Volume)
	}
	return out
}

// TestRootLingerReusesStaging: after the last release the volume stays
// staged, with no claim, recorded as lingering; the next Acquire gets the
// same mount on the same device (nothing attached or mounted again) and
// the data; once the period has passed, gc unstages it.
func TestRootLingerReusesStaging(t *testing.T) {
	m, _ := rootManagerWith(t, lingerPool)
	st := mustAcquire(t, m, owner("first"), req("warm", "/data"))
	before := stagingOf(t, m, "warm")
	writeData(t, st[0].Source, "f", "written before the stop")
	mustRelease(t, m, "first")

	if atts, _ := m.Attachments(); len(atts) > 0 {
		t.Fatalf("claims left after the last release: %+v", atts)
	}
	if got := lingeringNames(t, m); !slices.Equal(got, []string{"default/warm"}) {
		t.Fatalf("lingering %v, want default/warm", got)
	}
	if now := stagingOf(t, m, "warm"); now.mountID != before.mountID || !slices.Equal(now.loops, before.loops) {
		t.Fatalf("lingering staging %+v, want it as it was: %+v", now, before)
	}

	again := mustAcquire(t, m, owner("second"), req("warm", "/data"))
	if now := stagingOf(t, m, "warm"); now.mountID != before.mountID || len(now.loops) != 1 || !slices.Equal(now.loops, before.loops) {
		t.Fatalf("re-acquired staging %+v, want the lingering one %+v", now, before)
	}
	atts, err := m.Attachments()
	if err != nil || len(atts) != 1 || atts[0].Device != before.loops[0] || atts[0].Step != StepMounted {
		t.Fatalf("claims %+v (%v), want one mounted claim on %s", atts, err, before.loops[0])
	}
	if got := lingeringNames(t, m); len(got) > 0 {
		t.Fatalf("a claimed volume is still recorded as lingering: %v", got)
	}
	if got := readData(t, again[0].Source, "f"); got != "written before the stop" {
		t.Fatalf("read %q", got)
	}
	mustRelease(t, m, "second")

	// Within the period neither gc nor the timer's pass unstages it.
	if _, err := m.Reconcile(context.Background(), func(Owner) bool { return false }); err != nil {
		t.Fatal(err)
	}
	next, err := m.EndLingering(context.Background())
	if err != nil || next.IsZero() {
		t.Fatalf("EndLingering within the period: next %v, %v", next, err)
	}
	if now := stagingOf(t, m, "warm"); now.mountID != before.mountID {
		t.Fatalf("unstaged within the period: %+v", now)
	}

	endLingering(t, m)
	rep, err := m.Reconcile(context.Background(), func(Owner) bool { return false })
	if err != nil || len(rep.Unmounted) != 1 {
		t.Fatalf("gc after the period: %+v, %v; want the staging unmounted", rep, err)
	}
	assertNothingStaged(t, m)
	if got := lingeringNames(t, m); len(got) > 0 {
		t.Fatalf("lingering after gc: %v", got)
	}
}

// TestRootLingerEndsAtTheNextAcquire: on a host without a daemon, the
// next Acquire (of any volume) unstages volumes whose period has passed;
// a pool with linger off unstages at once, and the data is synced either
// way.
func TestRootLingerEndsAtTheNextAcquire(t *testing.T) {
	m, _ := rootManagerWith(t, lingerPool+"\n[pools.off]\ndriver = \"loop\"\ntenants = [\"*\"]\nlinger = \"0s\"\n")
	mustAcquire(t, m, owner("a"), req("expires", "/d"))
	mustRelease(t, m, "a")
	endLingering(t, m)

	mustAcquire(t, m, owner("b"), Request{Name: "other", Target: "/d", Pool: "off"})
	if s := stagingOf(t, m, "expires"); s.mountID != 0 {
		t.Fatalf("a lingering volume past its period is still staged after the next Acquire: %+v", s)
	}
	mustRelease(t, m, "b")
	if got := lingeringNames(t, m); len(got) > 0 {
		t.Fatalf("lingering %v after releases past the period and in a pool without linger", got)
	}
	assertNothingStaged(t, m)
}

// TestRootLingeringVolumeOperations: remove, resize, snapshot, export,
// restore and clone work on a lingering volume; those that need it
// detached unstage it first.
func TestRootLingeringVolumeOperations(t *testing.T) {
	m, _ := rootManagerWith(t, lingerPool)
	ctx := context.Background()
	linger := func(name string) {
		t.Helper()
		mustAcquire(t, m, owner("c"), Request{Name: name, Target: "/d", Size: 256 << 20})
		mustRelease(t, m, "c")
		if s := stagingOf(t, m, name); s.mountID == 0 {
			t.Fatalf("%s does not linger", name)
		}
	}
	linger("ops")
	rec, err := m.Volume(ctx, "default", "ops")
	if err != nil {
		t.Fatal(err)
	}
	before := capacity(t, m.stagingDir(rec.ID))
	if _, err := m.Resize(ctx, "default", "ops", 320<<20); err != nil {
		t.Fatalf("online resize of a lingering volume: %v", err)
	}
	// Without CAP_SYS_RESOURCE an ext4 grows offline: the next Acquire
	// stages the volume again instead of reusing it.
	st := mustAcquire(t, m, owner("c"), req("ops", "/d"))
	if rec, err := m.Volume(ctx, "default", "ops"); err != nil || rec.GrowPending || capacity(t, st[0].Source) < before+50<<20 {
		t.Fatalf("grow of a lingering volume not done at the next Acquire: %+v, %v", rec.DataState, err)
	}
	mustRelease(t, m, "c")
	if s, err := m.Snapshot(ctx, "default", "ops", "s1"); err != nil || !s.Frozen {
		t.Fatalf("snapshot of a lingering volume: %+v, %v", s, err)
	}
	var exported bytes.Buffer
	if err := m.Export(ctx, "default", "ops", "", &exported, nil); err != nil || exported.Len() == 0 {
		t.Fatalf("export of a lingering volume: %v", err)
	}
	if s := stagingOf(t, m, "ops"); s.mountID != 0 || len(lingeringNames(t, m)) > 0 {
		t.Fatalf("export left the volume staged: %+v", s)
	}
	linger("ops")
	if _, err := m.Restore(ctx, "default", "ops", "s1"); err != nil {
		t.Fatalf("restore of a lingering volume: %v", err)
	}
	linger("ops")
	if _, err := m.Clone(ctx, "default", Request{Name: "copy", From: "ops@s1"}); err != nil {
		t.Fatalf("clone from a lingering volume: %v", err)
	}
	if err := m.RemoveSnapshot(ctx, "default", "ops", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "default", "ops"); err != nil {
		t.Fatalf("remove of a lingering volume: %v", err)
	}
	if err := m.Remove(ctx, "default", "copy"); err != nil {
		t.Fatal(err)
	}
	if got := lingeringNames(t, m); len(got) > 0 {
		t.Fatalf("lingering %v after remove", got)
	}
	assertNothingStaged(t, m)
}

// TestRootLingerCrash kills the last Release between its sync and the
// lingering record (the helper re-acquires a lingering volume first, in
// another process): the dead owner's claim is released by gc as if
// nothing lingered, and the data written before is there.
func TestRootLingerCrash(t *testing.T) {
	testenv.Require(t, failpoint.Enabled, "failpoints compiled in (go test -tags failpoints, as make test does)")
	m, cfgPath := rootManagerWith(t, lingerPool)
	st := mustAcquire(t, m, owner("setup"), req("crash", "/data"))
	writeData(t, st[0].Source, "before", "synced before the crash")
	mustRelease(t, m, "setup")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperConfigEnv+"="+cfgPath, failpoint.EnvVar+"=release:synced")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed at release:synced: %v\n%s", err, out)
	}
	if atts, _ := m.Attachments(); len(atts) != 1 || len(lingeringNames(t, m)) > 0 {
		t.Fatalf("after the crash: claims %+v, lingering %v; want the helper's claim, nothing lingering", atts, lingeringNames(t, m))
	}
	rep, err := m.Reconcile(context.Background(), OwnerAlive)
	if err != nil || len(rep.Released) != 1 {
		t.Fatalf("gc: %+v, %v; want the dead helper's claim released", rep, err)
	}
	assertNothingStaged(t, m)
	st = mustAcquire(t, m, owner("after"), req("crash", "/data"))
	if got := readData(t, st[0].Source, "before"); got != "synced before the crash" {
		t.Fatalf("data after the crash: %q", got)
	}
	mustRelease(t, m, "after")
}

// BenchmarkAcquireReleaseLinger measures Acquire and Release of an
// existing 1 GiB ext4 volume in a pool that lingers (the re-Acquire finds
// it staged) and in one that does not (attach, superblock check, mount;
// sync, unmount, detach), interleaved so both see the same load. It
// reports the medians of each step in ms.
func BenchmarkAcquireReleaseLinger(b *testing.B) {
	m, _ := rootManagerWith(b, lingerPool+"\n[pools.off]\ndriver = \"loop\"\ntenants = [\"*\"]\nlinger = \"0s\"\n")
	variants := []struct {
		name string
		r    Request
	}{{"linger", req("warm", "/b")}, {"off", Request{Name: "cold", Target: "/b", Pool: "off"}}}
	for _, v := range variants {
		mustAcquire(b, m, owner("setup"), v.r)
		mustRelease(b, m, "setup")
	}
	took := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range variants {
			start := time.Now()
			mustAcquire(b, m, owner("bench"), v.r)
			acquired := time.Now()
			mustRelease(b, m, "bench")
			took[v.name+"-acquire"] = append(took[v.name+"-acquire"], acquired.Sub(start))
			took[v.name+"-release"] = append(took[v.name+"-release"], time.Since(acquired))
		}
	}
	b.StopTimer()
	for name, ds := range took {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-ms")
	}
}
