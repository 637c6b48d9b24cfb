package failpoint

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// TestReleaseBinaryHasNoFailpoints builds every binary as make build does
// and checks none holds failpoint code: no -tags failpoints in its build
// info and no trace of the variable that triggers one. A build with the
// tag shows both, so the check can tell.
func TestReleaseBinaryHasNoFailpoints(t *testing.T) {
	if testing.Short() && !testenv.InCI() {
		t.Skip("builds the binaries (runs in make test and under CI=true)")
	}
	goTool := testenv.RequireTool(t, "go")
	for _, tc := range []struct {
		tags string
		want bool
	}{{"", false}, {"failpoints", true}} {
		dir := t.TempDir()
		args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", dir + "/"}
		if tc.tags != "" {
			args = append(args, "-tags", tc.tags)
		}
		cmd := exec.Command(goTool, append(args, "./cmd/...")...)
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		bins, _ := filepath.Glob(filepath.Join(dir, "mooring*"))
		if len(bins) < 3 {
			t.Fatalf("built %v, want every cmd/ binary", bins)
		}
		withEnv := 0
		for _, bin := range bins {
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			info, err := exec.Command(goTool, "version", "-m", bin).Output()
			if err != nil {
				t.Fatal(err)
			}
			hasEnv, hasTag := bytes.Contains(data, []byte(EnvVar)), strings.Contains(string(info), "failpoints")
			if hasEnv {
				withEnv++
			}
			// A binary that runs no operation (mooring-metrics) links
			// no failpoint even when built with them: only a release
			// binary must have none.
			if hasEnv && !tc.want || hasTag != tc.want {
				t.Errorf("%s (tags %q): mentions %s: %v, build info names the tag: %v; want %v", filepath.Base(bin), tc.tags, EnvVar, hasEnv, hasTag, tc.want)
			}
		}
		if tc.want && withEnv == 0 {
			t.Errorf("no binary built with %q mentions %s: the check cannot see failpoint code", tc.tags, EnvVar)
		}
	}
}
