package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// HooksDir is where podman and CRI-O read hooks.d files by default and
// where `make install` puts mooring's.
const HooksDir = "/usr/share/containers/oci/hooks.d"

// Make runs `make args...` in the repository (e.g. install DESTDIR=...).
func Make(tb testing.TB, args ...string) string {
	tb.Helper()
	testenv.RequireRoot(tb)
	out, stderr, err := RunCmd(tb, 5*time.Minute, nil, "make", append([]string{"-C", testenv.RepoRoot(), "--no-print-directory"}, args...)...)
	if err != nil {
		tb.Fatalf("make %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// AsInstalled returns a program that runs its arguments in a private mount
// namespace where the files under destdir (a `make install DESTDIR=`)
// appear at their real paths: read-only overlays of destdir's copy of each
// of dirs over the host's. Engines then find the hooks.d files, the
// binaries they name and /etc/mooring as after a real install, and the
// host's directories are never written. The namespace ends with the
// program's last process.
func AsInstalled(tb testing.TB, destdir string, dirs ...string) string {
	tb.Helper()
	_, ok := testenv.LookTool("unshare")
	testenv.Require(tb, ok, "unshare (util-linux)")
	script := "#!/bin/sh\nset -e\n"
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(destdir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
		script += "mount -t overlay overlay -o " + shellQuote("lowerdir="+filepath.Join(destdir, d)+":"+d) + " " + shellQuote(d) + "\n"
	}
	script += "exec \"$@\"\n"
	inner := filepath.Join(tb.TempDir(), "installed-ns")
	if err := os.WriteFile(inner, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	outer := filepath.Join(tb.TempDir(), "as-installed")
	wrapper := "#!/bin/sh\nexec unshare -m --propagation private " + shellQuote(inner) + " \"$@\"\n"
	if err := os.WriteFile(outer, []byte(wrapper), 0o755); err != nil {
		tb.Fatal(err)
	}
	return outer
}

// InstallOver runs `make install DESTDIR=<new dir>` on a DESTDIR that
// already holds s's config as /etc/mooring/config.toml, as on a host where
// the admin wrote one (install keeps it). It returns the DESTDIR, that
// config's path in it, and make's output.
func InstallOver(tb testing.TB, s *Scratch) (dest, conf, out string) {
	tb.Helper()
	dest = tb.TempDir()
	conf = filepath.Join(dest, "etc", "mooring", "config.toml")
	raw, err := os.ReadFile(s.ConfigPath)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(conf), 0o755)
	}
	if err == nil {
		err = os.WriteFile(conf, raw, 0o644)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return dest, conf, Make(tb, "install", "DESTDIR="+dest)
}
