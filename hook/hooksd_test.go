package hook

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// hooksdFile is the hooks.d schema 1.0.0 as podman and CRI-O read it.
type hooksdFile struct {
	Version string `json:"version"`
	Hook    struct {
		Path string   `json:"path"`
		Args []string `json:"args"`
	} `json:"hook"`
	When struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// matches is hooks.d's rule: every when.annotations entry must match some
// annotation (entries are ANDed, so the three keys share one pattern).
func (h hooksdFile) matches(ann map[string]string) bool {
	for keyPattern, valuePattern := range h.When.Annotations {
		found := false
		for k, v := range ann {
			if regexp.MustCompile(keyPattern).MatchString(k) && regexp.MustCompile(valuePattern).MatchString(v) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestHooksDFiles(t *testing.T) {
	for file, stage := range map[string]string{
		"mooring-createruntime.json": StageCreateRuntime,
		"mooring-poststop.json":      StagePoststop,
	} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "deploy", "hooks.d", file))
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			var h hooksdFile
			if err := dec.Decode(&h); err != nil {
				t.Fatal(err)
			}
			if h.Version != "1.0.0" || !slices.Equal(h.Stages, []string{stage}) ||
				!slices.Equal(h.Hook.Args, []string{"mooring", "hook", stage}) || !filepath.IsAbs(h.Hook.Path) {
				t.Fatalf("hook %+v", h)
			}
			if _, err := parseArgs(h.Hook.Args[2:]); err != nil {
				t.Fatalf("the hook's args are refused: %v", err)
			}
			for _, tc := range []struct {
				key, value string
				want       bool
			}{
				{"volumes.mooring.dev", "[{name: a, target: /a}]", true},
				{"volumes.mooring.dev/pod", "[]", true},
				{"volumes.mooring.dev/container.web", "[]", true},
				{"volumes.mooring.dev", "", false},
				{"volumes.mooring.dev/container.", "[]", false},
				{"xvolumes.mooring.dev", "[]", false},
				{"volumes.mooring.dev.evil", "[]", false},
				{"volumes.mooring.devices", "[]", false},
				{"volumes.mooring.dev/podx", "[]", false},
				{"volumesXmooring.dev", "[]", false},
				{"io.kubernetes.cri.container-name", "web", false},
			} {
				ann := map[string]string{tc.key: tc.value, "org.opencontainers.image.title": "x"}
				if got := h.matches(ann); got != tc.want {
					t.Errorf("annotation %q=%q: hook runs %v, want %v", tc.key, tc.value, got, tc.want)
				}
			}
		})
	}
}
