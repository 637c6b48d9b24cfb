package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// doctorCheck runs argv (a `mooring --json doctor` command line) and
// returns one check's level and detail. Other checks may fail on this
// host, so the exit status is not judged.
func doctorCheck(t *testing.T, env []string, name string, argv ...string) (level, detail string) {
	t.Helper()
	stdout, stderr, _ := lab.RunCmd(t, 2*time.Minute, env, argv[0], argv[1:]...)
	var checks []struct{ Name, Level, Detail string }
	if err := json.Unmarshal([]byte(stdout), &checks); err != nil {
		t.Fatalf("mooring doctor --json: %v\n%s%s", err, stdout, stderr)
	}
	for _, c := range checks {
		if c.Name == name {
			return c.Level, c.Detail
		}
	}
	t.Fatalf("mooring doctor has no check %q:\n%s", name, stdout)
	return "", ""
}

// TestDoctorPodmanHooksDir runs `mooring doctor` against real podman with
// scratch containers.conf files: the podman hooks check fails while
// podman's hooks_dir lacks mooring's files or names a binary that is not
// there (the old PREFIX mismatch), and passes once it holds them.
func TestDoctorPodmanHooksDir(t *testing.T) {
	bins := lab.Binaries(t)
	s := lab.NewScratch(t)
	podman, ok := testenv.LookTool("podman")
	testenv.Require(t, ok, "podman (run make prereqs)")
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	os.MkdirAll(stale, 0o755)
	for _, f := range []string{"mooring-createruntime.json", "mooring-poststop.json"} {
		raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "hooks.d", f))
		if err != nil {
			t.Fatal(err)
		}
		raw = []byte(strings.ReplaceAll(string(raw), "/usr/local/bin/mooring", filepath.Join(dir, "gone", "mooring")))
		if err := os.WriteFile(filepath.Join(stale, f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, hooksDir, level, says string
	}{
		{"empty hooks dir", t.TempDir(), "FAIL", "none runs `mooring hook createRuntime`"},
		{"hooks naming a binary that is not there", stale, "FAIL", "which is not an executable"},
		{"mooring's hooks", lab.WriteHooksDir(t, bins.Mooring, s), "OK", "mooring-createruntime.json"},
	} {
		conf := filepath.Join(t.TempDir(), "containers.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("[engine]\nhooks_dir = [%q]\n", tc.hooksDir)), 0o644); err != nil {
			t.Fatal(err)
		}
		env := append(s.Env(), "CONTAINERS_CONF="+conf, "PATH="+filepath.Dir(podman)+":"+os.Getenv("PATH"))
		level, detail := doctorCheck(t, env, "podman hooks", bins.Mooring, "--json", "doctor")
		if level != tc.level || !strings.Contains(detail, tc.says) || !strings.Contains(detail, tc.hooksDir) {
			t.Errorf("%s: %s %s; want %s naming %s and saying %q", tc.name, level, detail, tc.level, tc.hooksDir, tc.says)
		}
	}
}
