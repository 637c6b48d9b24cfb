package integration

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
