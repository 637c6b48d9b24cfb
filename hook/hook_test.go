package hook

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		stage, cfg   string
		wantErrorHas string
	}{
		{[]string{"createRuntime"}, StageCreateRuntime, "", ""},
		{[]string{"prestart", "--config", "/etc/x.toml"}, StagePrestart, "/etc/x.toml", ""},
		{[]string{"poststop", "--config=/c"}, StagePoststop, "/c", ""},
		{nil, "", "", "want a stage"},
		{[]string{"startContainer"}, "", "", `unknown stage "startContainer"`},
		{[]string{"poststop", "--debug"}, "", "", `unknown argument "--debug"`},
		{[]string{"poststop", "--config"}, "", "", `unknown argument "--config"`},
	} {
		stage, cfg, err := parseArgs(tc.args)
		if tc.wantErrorHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrorHas) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErrorHas)
			}
			continue
		}
		if err != nil || stage != tc.stage || cfg != tc.cfg {
			t.Errorf("%v: %q %q %v", tc.args, stage, cfg, err)
		}
	}
}

func TestNotYetMounted(t *testing.T) {
	reqs := []annotations.Volume{{Name: "a", Target: "/a"}, {Name: "b", Target: "/b"}}
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/a", Source: "/run/mooring/mnt/v1", Type: "bind"},
		{Destination: "/b", Source: "/elsewhere", Type: "bind"},
	}}
	got := notYetMounted(reqs, spec, "/run/mooring")
	if len(got) != 1 || got[0].Name != "b" {
		t.Fatalf("got %+v, want only b (a was added by the shim)", got)
	}
}
