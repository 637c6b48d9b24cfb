package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
)

const sampleSpec = `{"ociVersion":"1.2.0","process":{"args":["sh"],"env":["PATH=/bin","MOORING_VOLUMES=[{name: e, target: /e}]"],"futureField":{"x":1}},
"root":{"path":"rootfs"},"mounts":[{"destination":"/proc","type":"proc","source":"proc","extra":true}],
"hooks":{"createRuntime":[{"path":"/bin/x"}]},"annotations":{"volumes.mooring.dev":"[]"},"vendor.example/unknown":[1,2,3]}`

func TestSpecRoundTripKeepsUnknownFields(t *testing.T) {
	s, err := parseSpec([]byte(sampleSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.annotations()["volumes.mooring.dev"] != "[]" || len(s.env()) != 2 {
		t.Fatalf("annotations %v env %v", s.annotations(), s.env())
	}
	if err := s.addMount(specs.Mount{Destination: "/data", Type: "bind", Source: "/run/mooring/mnt/v1", Options: []string{"rbind"}}); err != nil {
		t.Fatal(err)
	}
	hook := specs.Hook{Path: "/usr/bin/mooring", Args: []string{"mooring", "hook", "poststop"}}
	s.addHook("poststop", hook)
	s.addHook("poststop", hook) // a retried create adds nothing
	out, err := s.encode()
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	json.Unmarshal([]byte(sampleSpec), &before)
	json.Unmarshal(out, &after)
	for _, k := range []string{"ociVersion", "process", "root", "annotations", "vendor.example/unknown"} {
		if !reflect.DeepEqual(before[k], after[k]) {
			t.Errorf("%s changed: %v -> %v", k, before[k], after[k])
		}
	}
	mounts := after["mounts"].([]any)
	if len(mounts) != 2 || mounts[0].(map[string]any)["extra"] != true {
		t.Errorf("mounts: %v", mounts)
	}
	hooks := after["hooks"].(map[string]any)
	if len(hooks["createRuntime"].([]any)) != 1 || len(hooks["poststop"].([]any)) != 1 {
		t.Errorf("hooks: %v", hooks)
	}
	s2, _ := parseSpec(out)
	if !s2.hasMount("/run/mooring/mnt/v1", "/data") || s2.hasMount("/run/mooring/mnt/v1", "/other") {
		t.Error("hasMount")
	}
}

func TestWriteSpecIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(sampleSpec), 0o640); err != nil {
		t.Fatal(err)
	}
	s, mode, err := readSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSpec(dir, s, mode); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	entries, _ := os.ReadDir(dir)
	if st.Mode().Perm() != 0o640 || len(entries) != 1 {
		t.Fatalf("mode %v, files %v", st.Mode().Perm(), entries)
	}
	os.Remove(path)
	os.Symlink("/etc/passwd", path)
	if _, _, err := readSpec(dir); err == nil {
		t.Fatal("followed a symlinked config.json")
	}
}

func FuzzRewrite(f *testing.F) {
	f.Add(sampleSpec)
	f.Add(`{"mounts":null,"hooks":null}`)
	f.Add(`{"a":{"b":[1,{"c":null}]},"mounts":[]}`)
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parseSpec([]byte(in))
		if err != nil {
			return
		}
		s.addMount(specs.Mount{Destination: "/d", Source: "/s", Type: "bind"})
		if err := s.addHook("poststop", specs.Hook{Path: "/m"}); err != nil {
			return
		}
		out, err := s.encode()
		if err != nil {
			t.Fatal(err)
		}
		var before, after map[string]json.RawMessage
		json.Unmarshal([]byte(in), &before)
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("rewritten spec is not JSON: %v", err)
		}
		for k, v := range before {
			if k == "mounts" || k == "hooks" {
				continue
			}
			var a, b any
			json.Unmarshal(v, &a)
			json.Unmarshal(after[k], &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("field %q lost or changed", k)
			}
		}
	})
}

func TestResolveTargets(t *testing.T) {
	image := func(t *testing.T, links map[string]string) string {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "dev"), 0o755)
		os.MkdirAll(filepath.Join(root, "srv", "x"), 0o755)
		for name, to := range links {
			if err := os.Symlink(to, filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	for _, tc := range []struct {
		name    string
		links   map[string]string
		targets []string
		want    map[string]string
		wantErr string
	}{
		{"plain", nil, []string{"/data"}, map[string]string{"/data": "/data"}, ""},
		{"through a symlink", map[string]string{"data": "/srv/x"}, []string{"/data/y"}, map[string]string{"/data/y": "/srv/x/y"}, ""},
		{"into dev", map[string]string{"data": "dev"}, []string{"/data"}, nil, "target /data: target resolves to /dev"},
		{"two targets, one place", map[string]string{"data": "/srv/x"}, []string{"/data", "/srv/x"}, nil, "resolves to /srv/x, like volume v0's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs []annotations.Volume
			for i, target := range tc.targets {
				reqs = append(reqs, annotations.Volume{Name: fmt.Sprintf("v%d", i), Target: target})
			}
			got, err := resolveTargets(image(t, tc.links), reqs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := resolveTargets(t.TempDir(), []annotations.Volume{{Name: "v", Target: "/data"}}); err == nil || !strings.Contains(err.Error(), "is empty (not mounted yet?)") {
		t.Fatalf("empty root: %v", err)
	}
}
