package integration

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// installedDirs are the host directories `make install` writes into with
// the default PREFIX, HOOKS_DIR and SYSCONFDIR.
var installedDirs = []string{"/usr/local/bin", "/usr/share/containers", "/etc"}

// TestInstallPodmanDefaultHooksDir installs with `make install DESTDIR=`
// (default PREFIX) as a user would, then runs podman with no hooks_dir in
// its containers.conf, where the installed files appear at their real
// paths (a private mount namespace; the host is not written): podman must
// read the installed hooks dir by default, the hook must run the installed
// binary with the installed config, and the container must get its volume.
// `make uninstall` then removes what install added and keeps the edited
// config.
func TestInstallPodmanDefaultHooksDir(t *testing.T) {
	s := lab.NewScratch(t)
	// The admin's config (here, the scratch one) is there before install.
	dest, conf, out := lab.InstallOver(t, s)
	if !strings.Contains(out, "keeping "+conf) {
		t.Fatalf("make install did not keep the existing config:\n%s", out)
	}
	for _, f := range []string{"mooring-createruntime.json", "mooring-poststop.json"} {
		raw, err := os.ReadFile(filepath.Join(dest, lab.HooksDir, f))
		if err != nil {
			t.Fatalf("make install: %v", err)
		}
		if !strings.Contains(string(raw), `"path": "/usr/local/bin/mooring"`) {
			t.Fatalf("%s does not run the installed binary:\n%s", f, raw)
		}
	}

	p := lab.NewPodman(t, lab.Runc(t), "") // no hooks_dir: podman's default
	installed := lab.AsInstalled(t, dest, installedDirs...)
	podman, ok := testenv.LookTool("podman")
	testenv.Require(t, ok, "podman (run make prereqs)")
	ann := `"volumes.mooring.dev=[{name: installed, target: /data, size: 64Mi}]"`
	run := func(script string) (string, string) {
		t.Helper()
		stdout, stderr, err := lab.RunCmd(t, 2*time.Minute, p.Env(), installed, podman, "--log-level=debug",
			"run", "--rm", "--network", "none", "--annotation", ann, p.Image, "sh", "-c", script)
		if err != nil {
			t.Fatalf("podman run: %v\n%s\nlog: %s", err, stderr, s.Log())
		}
		return stdout, stderr
	}
	stdout, stderr := run("grep ' /data ' /proc/mounts && echo from-installed > /data/f && sync")
	if !strings.Contains(stdout, " /data ") {
		t.Fatalf("the container has no volume at /data:\n%s", stdout)
	}
	m := regexp.MustCompile(`[Rr]eading hooks from ([^" ]+)`).FindStringSubmatch(stderr)
	if m == nil || m[1] != lab.HooksDir {
		t.Fatalf("podman read hooks from %v, want %s (make install's default)", m, lab.HooksDir)
	}
	// mooring doctor, as installed, sees the hooks where podman reads them.
	level, detail := doctorCheck(t, p.Env(), "podman hooks", installed, "/usr/local/bin/mooring", "--json", "doctor")
	if level != "OK" || !strings.Contains(detail, lab.HooksDir) {
		t.Errorf("doctor as installed: %s %s", level, detail)
	}
	if out, _ := run("cat /data/f"); strings.TrimSpace(out) != "from-installed" {
		t.Fatalf("second container read %q", out)
	}
	if n := s.Attachments(); n != 0 {
		t.Fatalf("%d attachments after podman run --rm", n)
	}

	lab.Make(t, "uninstall", "DESTDIR="+dest)
	if left := filesUnder(t, dest); len(left) != 1 || left[0] != conf {
		t.Fatalf("after uninstall: %v, want only the edited config %s", left, conf)
	}
	// A config install wrote itself (the default, unedited) goes too.
	fresh := t.TempDir()
	lab.Make(t, "install", "DESTDIR="+fresh)
	lab.Make(t, "uninstall", "DESTDIR="+fresh)
	if left := filesUnder(t, fresh); len(left) != 0 {
		t.Fatalf("uninstall left %v", left)
	}
}

// filesUnder lists the files (not directories) below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
