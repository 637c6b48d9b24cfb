package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// The escape tests plant symlinks in the image that point a volume's
// target outside the container root or onto the kernel's interfaces, and
// run them through each front-end with a real runtime. Every front-end
// applies the one target rule (internal/oci): the volume lands inside the
// rootfs or is refused, never in /proc, /sys, /dev or on the root, and the
// host's mount table never changes.

// escapeCase is one symlink /data in the image and the target asked for.
type escapeCase struct {
	name, link, target string
	inImage            bool   // the link's target also exists inside the image
	lands              string // where an accepted target resolves in the root
	refused            string // error expected from the runtime, or ""
}

// escapeCases are the cases for the front-ends that see the rootfs (hook,
// shim); outside is a host directory the volume must never reach.
func escapeCases(outside string) []escapeCase {
	up := "../../../../../../.."
	return []escapeCase{
		// A link to a path the image lacks is refused: nothing is created
		// through a symlink.
		{"absolute symlink", outside, "/data", false, "", "not a directory"},
		{"relative symlink", up + outside, "/data", false, "", "not a directory"},
		{"symlinked parent", outside, "/data/sub", false, "", "not a directory"},
		// A link to a path the image has resolves inside the root.
		{"absolute symlink into the image", outside, "/data", true, outside, ""},
		{"relative symlink into the image", up + outside, "/data/sub", true, outside + "/sub", ""},
		{"symlink to proc", "/proc", "/data", false, "", "resolves to /proc"},
		{"relative symlink to sys", "../sys/fs", "/data", false, "", "resolves to /sys/fs"},
		{"symlink to dev", "/dev", "/data", false, "", "resolves to /dev"},
		{"relative symlink into dev", "dev", "/data/shm", false, "", "resolves to /dev/shm"},
		{"symlink to the root", "/", "/data", false, "", "resolves to the container's root"},
	}
}

// runEscapes runs each case through run and checks the outcome, the host
// directory outside and the host mount table.
func runEscapes(t *testing.T, runc, rootfs string, cases []escapeCase, outside string,
	run func(b *lab.Bundle, id string) (out, stderr string, err error), check func(t *testing.T, b *lab.Bundle, tc escapeCase)) {
	tmp := os.TempDir()
	before := lab.MountsOutside(tmp)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := lab.NewBundle(t, runc, rootfs, "sh", "-c", "echo inside > "+tc.target+"/marker && cat "+tc.target+"/marker")
			if err := os.Symlink(tc.link, filepath.Join(b.Rootfs, "data")); err != nil {
				t.Fatal(err)
			}
			// As after runc's sysfs mount: a link to /sys/fs is not dangling
			// for a front-end that resolves in the image itself (the shim).
			if err := os.MkdirAll(filepath.Join(b.Rootfs, "sys", "fs"), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.inImage {
				if err := os.MkdirAll(filepath.Join(b.Rootfs, outside, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			b.Annotate(annotations.Key, `[{name: esc, target: `+tc.target+`}]`)
			out, stderr, err := run(b, "esc-"+strings.ReplaceAll(tc.name, " ", "-"))
			if tc.refused != "" {
				if err == nil || !strings.Contains(stderr, tc.refused) || !strings.Contains(stderr, "mooring: ") {
					t.Fatalf("want refusal %q, got err=%v stdout=%q stderr=%s", tc.refused, err, out, stderr)
				}
			} else if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			} else if !strings.HasPrefix(out, "inside\n") {
				t.Fatalf("container output %q", out)
			}
			if check != nil {
				check(t, b, tc)
			}
			assertEmpty(t, outside)
			if after := lab.MountsOutside(tmp); !slices.Equal(before, after) {
				t.Fatalf("host mount table changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func escapeDir(t *testing.T) string {
	outside, err := os.MkdirTemp("/var/tmp", "mooring-escape-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	return outside
}

func assertEmpty(t *testing.T, outside string) {
	t.Helper()
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("the volume reached the host directory %s: %v", outside, entries)
	}
}

// TestHookEscapesStayInsideTheRoot: the hook resolves targets inside the
// root (RESOLVE_IN_ROOT) in the container's mount namespace.
func TestHookEscapesStayInsideTheRoot(t *testing.T) {
	e := newHookEnv(t)
	outside := escapeDir(t)
	runEscapes(t, e.runc.Path, e.rootfs, escapeCases(outside), outside, func(b *lab.Bundle, id string) (string, string, error) {
		b.AddHooks(e.bins.Mooring, e.scratch)
		return e.runc.Run(b, id)
	}, nil)
}

// TestShimEscapesStayInsideTheRoot: the shim resolves targets inside the
// bundle's rootfs before runc runs, and writes the resolved path into the
// spec, so runc follows no symlink of the image.
func TestShimEscapesStayInsideTheRoot(t *testing.T) {
	e := newShimEnv(t)
	outside := escapeDir(t)
	runEscapes(t, e.runc, e.rootfs, escapeCases(outside), outside, func(b *lab.Bundle, id string) (string, string, error) {
		return e.shim.Run(b, id)
	}, func(t *testing.T, b *lab.Bundle, tc escapeCase) {
		var spec specs.Spec
		raw, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
		if err := json.Unmarshal(raw, &spec); err != nil {
			t.Fatal(err)
		}
		var dests []string
		for _, m := range spec.Mounts {
			if strings.Contains(m.Source, "/mnt/") && m.Type == "bind" {
				dests = append(dests, m.Destination)
			}
		}
		if tc.refused != "" && len(dests) != 0 || tc.refused == "" && !slices.Equal(dests, []string{tc.lands}) {
			t.Fatalf("volume destinations in the spec %v, want %q", dests, tc.lands)
		}
		if n := e.scratch.Attachments(); n != 0 {
			t.Fatalf("%d attachments left", n)
		}
	})
}

// TestNRIEscapesStayInsideTheRoot: under NRI the runtime resolves the
// target in a rootfs the plugin never sees; the createRuntime check the
// plugin adds refuses a volume the runtime mounted in /proc, /sys, /dev or
// on the root before the container's program runs. Links the image lacks
// are followed by runc inside the root (it creates through them); runc
// itself refuses a target on the root ("is on the top of rootfs") and in
// /proc, so those cases prove nothing of mooring's here.
func TestNRIEscapesStayInsideTheRoot(t *testing.T) {
	e := newCRIEnv(t, containerdNRI)
	outside := escapeDir(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", lab.Rootfs(t), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v: %s", err, out)
	}
	links := map[string]string{
		"abs": outside, "rel": "../../../../../../.." + outside,
		"dev-link": "/dev", "sys-link": "../sys/fs", "dev-rel": "dev",
	}
	for name, to := range links {
		if err := os.Symlink(to, filepath.Join(rootfs, name)); err != nil {
			t.Fatal(err)
		}
	}
	const image = "docker.io/library/mooring-escape:lab"
	e.ctrd.ImportImage(image, rootfs, "sh")

	tmp := os.TempDir()
	before := lab.MountsOutside(tmp)
	for i, tc := range []struct{ name, target, refused string }{
		{"absolute symlink", "/abs", ""},
		{"relative symlink", "/rel/sub", ""},
		{"symlink to dev", "/dev-link", "resolves to /dev"},
		{"relative symlink into dev", "/dev-rel/x", "resolves to /dev/x"},
		{"relative symlink to sys", "/sys-link", "resolves to /sys/fs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.pod("esc", fmt.Sprintf("esc%d", i), map[string]string{annotations.KeyPod: `[{name: esc, target: ` + tc.target + `}]`})
			defer func() {
				e.removePod(p)
				waitForAttachments(t, e.scratch, 0)
			}()
			id, err := e.cri.CreateContainerFrom(p, image, "c", "sh", "-c", "echo inside > "+tc.target+"/marker && cat "+tc.target+"/marker")
			if err != nil {
				t.Fatalf("CreateContainer: %v\nplugin log:\n%s", err, e.pluginLog())
			}
			err = e.cri.Start(id)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "mooring: ") {
					t.Fatalf("want refusal %q at start, got %v", tc.refused, err)
				}
			} else {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				if code, err := e.cri.Wait(id); err != nil || code != 0 {
					t.Fatalf("container exited %d: %v", code, err)
				}
			}
			assertEmpty(t, outside)
			if after := lab.MountsOutside(tmp); !slices.Equal(before, after) {
				t.Fatalf("host mount table changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}
