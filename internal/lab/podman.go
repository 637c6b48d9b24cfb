package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// Podman is a podman with its own storage, runtime dirs and config in a
// scratch directory, using the current runc and mooring's hooks.d files.
type Podman struct {
	Dir   string
	Image string
	bin   string
	env   []string
	tb    testing.TB
}

// NewPodman configures podman per LAB.md (cgroupfs, file events, the
// rlimits this host allows, vfs storage, no network) with hooksDir (none:
// podman's default, as on a host where nobody set hooks_dir), and
// imports the busybox rootfs as an image. Its cleanup removes every
// container and unmounts what podman left under its directory.
func NewPodman(tb testing.TB, runtime, hooksDir string) *Podman {
	tb.Helper()
	path, ok := testenv.LookTool("podman")
	testenv.Require(tb, ok, "podman (run make prereqs)")
	_, ok = testenv.LookTool("conmon")
	testenv.Require(tb, ok, "conmon (run make prereqs)")
	dir, err := os.MkdirTemp("", "mooring-podman-")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Podman{Dir: dir, Image: "localhost/mooring-busybox:lab", bin: path, tb: tb}
	hooksLine := ""
	if hooksDir != "" {
		hooksLine = fmt.Sprintf("hooks_dir = [%q]", hooksDir)
	}
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# No netavark or CNI plugins here: commands without --network work too.
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
runtime = "lab"
%s
tmp_dir = %q
static_dir = %q
volume_path = %q
[engine.runtimes]
lab = [%q]
[network]
network_backend = "cni"
`, filepath.Join(dir, "events.log"), hooksLine, filepath.Join(dir, "tmp"), filepath.Join(dir, "static"),
		filepath.Join(dir, "volumes"), runtime)
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "graph"), filepath.Join(dir, "run"))
	for name, content := range map[string]string{"containers.conf": conf, "storage.conf": storage} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	p.env = []string{
		"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
	}
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o700)
	os.MkdirAll(filepath.Join(dir, "xdg"), 0o700)
	tb.Cleanup(func() {
		p.Run("rm", "--all", "--force")
		mounts := MountsUnder(dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			exec.Command("umount", "-l", mounts[i]).Run()
		}
		os.RemoveAll(dir)
	})
	importRootfs(tb, p.env, path, p.Image)
	return p
}

// Run runs `podman args...`.
func (p *Podman) Run(args ...string) (stdout, stderr string, err error) {
	return RunCmd(p.tb, 2*time.Minute, p.env, p.bin, args...)
}

// Env is the environment that points podman at this scratch setup.
func (p *Podman) Env() []string { return p.env }

// WrapWithEnv returns a script that execs program with env set, for
// engines that do not pass their environment to the OCI runtime.
func WrapWithEnv(tb testing.TB, program string, env []string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), filepath.Base(program))
	script := "#!/bin/sh\n"
	for _, e := range env {
		script += "export " + shellQuote(e) + "\n"
	}
	script += "exec " + shellQuote(program) + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// WriteHooksDir writes mooring's hooks.d files (from deploy/hooks.d) into
// a new directory, pointing at the mooring binary with the scratch config.
func WriteHooksDir(tb testing.TB, mooring string, s *Scratch) string {
	tb.Helper()
	dir := tb.TempDir()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "deploy", "hooks.d", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("deploy/hooks.d: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var h map[string]any
		if err := json.Unmarshal(raw, &h); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		hook := h["hook"].(map[string]any)
		hook["path"] = mooring
		hook["env"] = s.Env()
		out, _ := json.Marshal(h)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), out, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// importRootfs imports the busybox rootfs as image with `<engine> import`.
func importRootfs(tb testing.TB, env []string, engine, image string) {
	tb.Helper()
	tar := exec.Command("tar", "-C", Rootfs(tb), "-c", ".")
	imp := exec.Command(engine, "import", "-", image)
	imp.Env = append(os.Environ(), env...)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		tb.Fatal(err)
	}
	if out, err := imp.CombinedOutput(); err != nil {
		tb.Fatalf("%s import: %v: %s", filepath.Base(engine), err, out)
	}
	tar.Wait()
}
