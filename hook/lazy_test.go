package hook

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
)

// runHookEnv makes the test binary run the hook (Run hardens the
// process: env and working directory, so it runs in a child).
const runHookEnv = "MOORING_TEST_RUN_HOOK"

func TestMain(m *testing.M) {
	if stage := os.Getenv(runHookEnv); stage != "" {
		if err := Run(context.Background(), []string{stage}, os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestNoRequestNoConfig: a container that asks for nothing costs the
// hook no config parse at either stage (most containers ask for
// nothing); the config is read as soon as one asks.
func TestNoRequestNoConfig(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(broken, []byte("not toml ["), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stage string, ann map[string]string) error {
		bundle := t.TempDir()
		raw, _ := json.Marshal(specs.Spec{Version: specs.Version, Root: &specs.Root{Path: "rootfs"}, Annotations: ann})
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		state, _ := json.Marshal(specs.State{Version: specs.Version, ID: "c1", Status: "creating", Pid: 1, Bundle: bundle, Annotations: ann})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), runHookEnv+"="+stage, config.EnvPath+"="+broken)
		cmd.Stdin = strings.NewReader(string(state))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	for _, stage := range []string{StageCreateRuntime, StagePoststop} {
		if err := run(stage, nil); err != nil {
			t.Errorf("%s without a request read the config: %v", stage, err)
		}
		err := run(stage, map[string]string{annotations.Key: `[{name: a, target: /a}]`})
		if err == nil || !strings.Contains(err.Error(), "config") {
			t.Errorf("%s with a request: %v, want the config's error", stage, err)
		}
	}
}
