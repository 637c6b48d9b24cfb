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

func TestDecodeState(t *testing.T) {
	good := `{"ociVersion":"1.0.2","id":"c1","status":"created","pid":42,"bundle":"/run/b","annotations":{"a":"b"},"runtimeExtra":1}`
	s, err := decodeState([]byte(good))
	if err != nil || s.ID != "c1" || s.Pid != 42 || s.Annotations["a"] != "b" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{
		``, `[]`, `{"id":"c1","bundle":"/b"} {}`, `{"bundle":"/b"}`,
		`{"id":"c","bundle":"b"}`, `{"id":"c","bundle":"/b/../etc"}`, `{"id":"c","bundle":"/b","pid":-1}`,
		`{"id":"c","bundle":"/b","pid":"1"}`,
	} {
		if _, err := decodeState([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
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

func FuzzState(f *testing.F) {
	f.Add(`{"ociVersion":"1.0.2","id":"c1","status":"created","pid":42,"bundle":"/run/b"}`)
	f.Add(`{"id":"x","bundle":"/","annotations":{"volumes.mooring.dev":"[]"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		st, err := decodeState([]byte(s))
		if err != nil {
			return
		}
		if st.ID == "" || !strings.HasPrefix(st.Bundle, "/") || st.Pid < 0 {
			t.Fatalf("invalid state accepted: %+v", st)
		}
	})
}
