package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Bundle is an OCI bundle with a private copy of the busybox rootfs.
type Bundle struct {
	Dir    string
	Rootfs string
	Spec   *specs.Spec
	tb     testing.TB
}

// NewBundle makes a bundle from `runc spec` with terminal off, a writable
// root copied from rootfs, and args.
func NewBundle(tb testing.TB, runc, rootfs string, args ...string) *Bundle {
	tb.Helper()
	dir := tb.TempDir()
	b := &Bundle{Dir: dir, Rootfs: filepath.Join(dir, "rootfs"), tb: tb}
	if out, err := exec.Command("cp", "-a", rootfs, b.Rootfs).CombinedOutput(); err != nil {
		tb.Fatalf("copy rootfs: %v: %s", err, out)
	}
	cmd := exec.Command(runc, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("runc spec: %v: %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	b.Spec = &specs.Spec{}
	if err := json.Unmarshal(raw, b.Spec); err != nil {
		tb.Fatal(err)
	}
	b.Spec.Root = &specs.Root{Path: b.Rootfs}
	b.Spec.Process.Terminal = false
	b.Spec.Process.Args = args
	b.Spec.Annotations = map[string]string{}
	b.Save()
	return b
}

// Annotate sets an annotation and saves.
func (b *Bundle) Annotate(key, value string) *Bundle {
	b.Spec.Annotations[key] = value
	b.Save()
	return b
}

// AddHooks adds mooring's createRuntime and poststop hooks pointing at the
// scratch config, as an admin would in config.json, and saves.
func (b *Bundle) AddHooks(mooring string, s *Scratch) *Bundle {
	hook := func(stage string) []specs.Hook {
		timeout := 60
		return []specs.Hook{{Path: mooring, Args: []string{"mooring", "hook", stage}, Env: s.Env(), Timeout: &timeout}}
	}
	if b.Spec.Hooks == nil {
		b.Spec.Hooks = &specs.Hooks{}
	}
	b.Spec.Hooks.CreateRuntime = hook("createRuntime")
	b.Spec.Hooks.Poststop = hook("poststop")
	b.Save()
	return b
}

// Save writes config.json.
func (b *Bundle) Save() {
	b.tb.Helper()
	raw, err := json.MarshalIndent(b.Spec, "", "  ")
	if err != nil {
		b.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), raw, 0o600); err != nil {
		b.tb.Fatal(err)
	}
}

// Runtime runs an OCI runtime (runc, the shim, the crun wrapper) with its
// own state root.
type Runtime struct {
	Path string
	Root string
	Env  []string
	tb   testing.TB
}

// NewRuntime returns a runtime with a scratch --root; its cleanup deletes
// every container left in that root.
func NewRuntime(tb testing.TB, path string, env ...string) *Runtime {
	tb.Helper()
	r := &Runtime{Path: path, Root: tb.TempDir(), Env: env, tb: tb}
	tb.Cleanup(func() {
		entries, _ := os.ReadDir(r.Root)
		for _, e := range entries {
			r.Exec("delete", "--force", e.Name())
		}
	})
	return r
}

// Exec runs `<runtime> --root ROOT args...`.
func (r *Runtime) Exec(args ...string) (stdout, stderr string, err error) {
	return RunCmd(r.tb, 2*time.Minute, r.Env, r.Path, append([]string{"--root", r.Root}, args...)...)
}

// Run runs a container to completion: `run --bundle DIR ID`.
func (r *Runtime) Run(b *Bundle, id string) (stdout, stderr string, err error) {
	return r.Exec("run", "--bundle", b.Dir, id)
}

// Start creates and starts a container in the background (its stdio goes
// to /dev/null); the runtime's cleanup deletes it.
func (r *Runtime) Start(b *Bundle, id string) error {
	r.tb.Helper()
	for _, verb := range []string{"create", "start"} {
		args := []string{"--root", r.Root, verb}
		if verb == "create" {
			args = append(args, "--bundle", b.Dir)
		}
		cmd := exec.Command(r.Path, append(args, id)...)
		cmd.Env = append(os.Environ(), r.Env...)
		errFile, err := os.CreateTemp(r.tb.TempDir(), "stderr")
		if err != nil {
			return err
		}
		cmd.Stderr = errFile
		err = cmd.Run()
		errFile.Close()
		if err != nil {
			msg, _ := os.ReadFile(errFile.Name())
			return fmt.Errorf("%s %s: %w: %s", r.Path, verb, err, msg)
		}
	}
	return nil
}
