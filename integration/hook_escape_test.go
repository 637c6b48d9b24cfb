package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// TestHookEscapesStayInsideTheRoot plants symlinks in the image that point
// a volume's target outside the container root. The hook resolves targets
// inside the root (RESOLVE_IN_ROOT), so the volume lands inside the rootfs
// or is refused; the host's mount table never changes.
func TestHookEscapesStayInsideTheRoot(t *testing.T) {
	e := newHookEnv(t)
	outside, err := os.MkdirTemp("/var/tmp", "mooring-escape-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	tmp := os.TempDir()
	before := lab.MountsOutside(tmp)

	for _, tc := range []struct {
		name, link, target string
		inImage            bool   // the link's target also exists inside the image
		refused            string // error expected in runc's stderr, or ""
	}{
		// A link to a path the image lacks is refused: nothing is created
		// through a symlink.
		{"absolute symlink", outside, "/data", false, "not a directory"},
		{"relative symlink", "../../../../../../.." + outside, "/data", false, "not a directory"},
		{"symlinked parent", outside, "/data/sub", false, "not a directory"},
		// A link to a path the image has resolves inside the root.
		{"absolute symlink into the image", outside, "/data", true, ""},
		{"relative symlink into the image", "../../../../../../.." + outside, "/data/sub", true, ""},
		{"symlink to proc", "/proc", "/data", false, "resolves to /proc"},
		{"relative symlink to sys", "../sys/fs", "/data", false, "resolves to /sys/fs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := lab.NewBundle(t, e.runc.Path, e.rootfs, "sh", "-c", "echo inside > "+tc.target+"/marker && cat "+tc.target+"/marker")
			if err := os.Symlink(tc.link, filepath.Join(b.Rootfs, "data")); err != nil {
				t.Fatal(err)
			}
			if tc.inImage {
				if err := os.MkdirAll(filepath.Join(b.Rootfs, outside, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			b.Annotate(annotations.Key, `[{name: esc, target: `+tc.target+`}]`).AddHooks(e.bins.Mooring, e.scratch)
			out, stderr, err := e.runc.Run(b, "esc-"+strings.ReplaceAll(tc.name, " ", "-"))
			if tc.refused != "" {
				if err == nil || !strings.Contains(stderr, tc.refused) || !strings.Contains(stderr, "mooring: ") {
					t.Fatalf("want refusal %q, got err=%v stderr=%s", tc.refused, err, stderr)
				}
			} else if err != nil {
				t.Fatalf("runc run: %v\n%s\nlog: %s", err, stderr, e.scratch.Log())
			} else if !strings.HasPrefix(out, "inside\n") {
				t.Fatalf("container output %q", out)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 0 {
				t.Fatalf("the volume reached the host directory %s: %v", outside, entries)
			}
			if after := lab.MountsOutside(tmp); !slices.Equal(before, after) {
				t.Fatalf("host mount table changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}
