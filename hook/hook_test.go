package hook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/volume"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		want         hookArgs
		wantErrorHas string
	}{
		{[]string{"createRuntime"}, hookArgs{stage: StageCreateRuntime, frontend: "hook"}, ""},
		{[]string{"prestart", "--config", "/etc/x.toml"}, hookArgs{stage: StagePrestart, configPath: "/etc/x.toml", frontend: "hook"}, ""},
		{[]string{"poststop", "--config=/c"}, hookArgs{stage: StagePoststop, configPath: "/c", frontend: "hook"}, ""},
		{[]string{"poststop", "--frontend", "shim", "--root", "/run/runc"}, hookArgs{stage: StagePoststop, frontend: "shim", root: "/run/runc"}, ""},
		{nil, hookArgs{}, "want a stage"},
		{[]string{"startContainer"}, hookArgs{}, `unknown stage "startContainer"`},
		{[]string{"poststop", "--debug"}, hookArgs{}, `unknown argument "--debug"`},
		{[]string{"poststop", "--config"}, hookArgs{}, `--config needs a value`},
		{[]string{"poststop", "--frontend=nri"}, hookArgs{}, `want hook or shim`},
		{[]string{"poststop", "--root", "run/runc"}, hookArgs{}, `not an absolute clean path`},
	} {
		got, err := parseArgs(tc.args)
		if tc.wantErrorHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrorHas) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErrorHas)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v %v, want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestNotYetMounted(t *testing.T) {
	// The shim writes targets resolved in the rootfs: /c is a symlink to
	// /srv/c in the image, so its staged mount is at /srv/c.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "srv", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/srv/c", filepath.Join(root, "c")); err != nil {
		t.Fatal(err)
	}
	reqs := []annotations.Volume{{Name: "a", Target: "/a"}, {Name: "b", Target: "/b"}, {Name: "c", Target: "/c"}, {Name: "d", Target: "/d"}}
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/a", Source: "/run/mooring/mnt/v1", Type: "bind"},
		{Destination: "/b", Source: "/elsewhere", Type: "bind"},
		{Destination: "/srv/c", Source: "/run/mooring/mnt/v3", Type: "bind"},
	}}
	m, err := volume.New(&config.Config{RunDir: "/run/mooring"})
	if err != nil {
		t.Fatal(err)
	}
	got := notYetMounted(reqs, spec, m.IsStaging, root)
	if len(got) != 2 || got[0].Name != "b" || got[1].Name != "d" {
		t.Fatalf("got %+v, want only b and d (a and c were added by the shim)", got)
	}
}

// TestBlockRequests: the shim's raw block nodes count as served; any other
// block request is refused before anything is acquired, naming the
// front-ends that serve it.
func TestBlockRequests(t *testing.T) {
	reqs := []annotations.Volume{
		{Name: "fs", Target: "/fs"},
		{Name: "shimmed", Target: "/disk", Mode: annotations.ModeBlock},
		{Name: "raw", Target: "/raw", Mode: annotations.ModeBlock},
	}
	spec := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{{Path: "/disk", Type: "b", Major: 7, Minor: 3}}}}
	m, err := volume.New(&config.Config{RunDir: "/run/mooring"})
	if err != nil {
		t.Fatal(err)
	}
	got := notYetMounted(reqs, spec, m.IsStaging, t.TempDir())
	if len(got) != 2 || got[0].Name != "fs" || got[1].Name != "raw" {
		t.Fatalf("got %+v, want fs and raw", got)
	}
	if err := refuseBlock(got[:1]); err != nil {
		t.Fatalf("filesystem volume refused: %v", err)
	}
	err = refuseBlock(got)
	if err == nil || !strings.Contains(err.Error(), `volume "raw": mode block is not served by the OCI hook`) ||
		!strings.Contains(err.Error(), "mooring-runtime") || !strings.Contains(err.Error(), "mooring-nri") {
		t.Fatalf("refusal: %v", err)
	}
}
