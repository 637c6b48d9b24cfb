package lab

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// Crun returns a wrapper around Debian's crun that runs it in a private
// mount namespace without the cgroup2 mount: crun 1.8 refuses this
// host's hybrid cgroup layout otherwise (LAB.md).
func Crun(tb testing.TB) string {
	tb.Helper()
	crun, ok := testenv.LookTool("crun")
	testenv.Require(tb, ok, "crun (run make prereqs)")
	path := filepath.Join(tb.TempDir(), "crun-hybrid")
	script := "#!/bin/sh\nexec unshare -m --propagation unchanged sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"' " + crun + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path
}
