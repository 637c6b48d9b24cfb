package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// TestHookRuncWarmRestart: with linger set, a container that exits leaves
// its volume staged with no claim; the next container within the period
// gets the same staging (same loop device, same mount) with the data;
// once linger is turned off, mooring gc leaves nothing behind.
func TestHookRuncWarmRestart(t *testing.T) {
	e := newHookEnv(t)
	e.scratch.WriteConfig(`linger = "1h"`)
	unlinger := func() {
		e.scratch.WriteConfig(`linger = "0s"`)
		if out, stderr, err := lab.RunCmd(t, time.Minute, e.scratch.Env(), e.bins.Mooring, "gc"); err != nil {
			t.Errorf("mooring gc: %v\n%s%s", err, out, stderr)
		}
	}
	t.Cleanup(unlinger) // before lab's check that nothing is left
	req := `[{name: data, target: /data, size: 128Mi}]`
	e.run(e.bundle(req, "echo kept > /data/file"), "first")

	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after the container exited", n)
	}
	loops, mounts := e.scratch.Leftovers()
	if len(loops) != 1 || len(mounts) != 1 {
		t.Fatalf("lingering: loop devices %v, mounts %v; want the volume's one of each", loops, mounts)
	}
	mountID := uniqueMountID(t, mounts[0])

	out := e.run(e.bundle(req, "cat /data/file; grep ' /data ' /proc/mounts"), "second")
	if !strings.HasPrefix(out, "kept\n"+loops[0]+" /data ") {
		t.Fatalf("second container: %q, want the data on %s", out, loops[0])
	}
	again, mountsAgain := e.scratch.Leftovers()
	if !slices.Equal(again, loops) || !slices.Equal(mountsAgain, mounts) || uniqueMountID(t, mounts[0]) != mountID {
		t.Fatalf("after the restart: loop devices %v, mounts %v; want the lingering %v %v, not staged again", again, mountsAgain, loops, mounts)
	}

	unlinger()
	if loops, mounts := e.scratch.Leftovers(); len(loops) > 0 || len(mounts) > 0 {
		t.Fatalf("after linger 0s and mooring gc: loop devices %v, mounts %v", loops, mounts)
	}
}

// uniqueMountID is the never-reused id of the mount at dir (a mount made
// again at the same place gets a new one).
func uniqueMountID(t *testing.T, dir string) uint64 {
	t.Helper()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, filepath.Clean(dir), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		t.Fatalf("statx %s: no unique mount id (%v)", dir, err)
	}
	return stx.Mnt_id
}

// BenchmarkRuncWarmRestart times `runc run` of a trivial container with
// mooring's hooks three ways, interleaved in one run: asking for no
// volume (the hook processes alone), an existing volume in a pool without
// linger (attach, check, mount; unmount, detach), and one in a pool that
// lingers (the restart finds it staged). The warm restart's goal is what
// the volume adds to the hooks: re-acquire, and the release that lingers.
func BenchmarkRuncWarmRestart(b *testing.B) {
	bins, rootfs, s := lab.Binaries(b), lab.Rootfs(b), lab.NewScratch(b)
	const cold = "[pools.cold]\ndriver = \"loop\"\ntenants = [\"*\"]\nlinger = \"0s\"\n"
	s.WriteConfig("linger = \"1h\"\n" + cold)
	b.Cleanup(func() {
		s.WriteConfig("linger = \"0s\"\n" + cold)
		if out, stderr, err := lab.RunCmd(b, time.Minute, s.Env(), bins.Mooring, "gc"); err != nil {
			b.Errorf("mooring gc: %v\n%s%s", err, out, stderr)
		}
	})
	runc := lab.NewRuntime(b, lab.Runc(b))
	bundle := func(request string) *lab.Bundle {
		bd := lab.NewBundle(b, runc.Path, rootfs, "true")
		if request != "" {
			bd.Annotate(annotations.Key, request)
		}
		return bd.AddHooks(bins.Mooring, s)
	}
	none := bundle("")
	existing := bundle(`[{name: cold, pool: cold, target: /data, size: 1Gi}]`)
	warm := bundle(`[{name: warm, target: /data, size: 1Gi}]`)
	mustRun := func(bd *lab.Bundle, id string) time.Duration {
		start := time.Now()
		if _, stderr, err := runc.Run(bd, id); err != nil {
			b.Fatalf("runc run %s: %v\n%s", id, err, stderr)
		}
		return time.Since(start)
	}
	mustRun(existing, "setup-cold") // create and format both volumes once
	mustRun(warm, "setup-warm")
	var tNone, tCold, tWarm []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tNone = append(tNone, mustRun(none, fmt.Sprintf("none-%d", i)))
		tCold = append(tCold, mustRun(existing, fmt.Sprintf("cold-%d", i)))
		tWarm = append(tWarm, mustRun(warm, fmt.Sprintf("warm-%d", i)))
	}
	b.StopTimer()
	med := reportMedians(b, map[string][]time.Duration{"hooks-no-volume": tNone, "existing-no-linger": tCold, "warm-restart": tWarm}, "hooks-no-volume")
	goalAdded("runc + hooks, warm restart (linger) over no volume", med, "hooks-no-volume", "warm-restart", 2)
}
