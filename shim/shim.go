package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/logging"
	"github.com/mooring-dev/mooring/volume"
)

// timeout bounds the shim's own work before it execs the runtime.
const timeout = 2 * time.Minute

// ExitError carries the real runtime's exit status (delete) or the shim's
// own failure (1).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps Run's error to the process's exit status.
func ExitCode(err error) int {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

// Run runs one runc command line through the shim. For every verb but
// delete it does not return on success: it execs the real runtime.
func Run(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	inv, err := ParseArgs(args, cwd)
	if err != nil {
		return fail(inv, stderr, nil, fmt.Errorf("mooring-runtime: %w", err))
	}
	cfg, err := config.Load("")
	if err != nil {
		return fail(inv, stderr, nil, err)
	}
	runtime, err := realRuntime(cfg.Runtimes)
	if err != nil {
		return fail(inv, stderr, nil, err)
	}
	switch inv.Command {
	case "create", "run":
		log, closer := openLog(cfg, stderr)
		defer closer.Close()
		if err := prepare(ctx, cfg, log, inv, runtime); err != nil {
			return fail(inv, stderr, log, err)
		}
	case "delete":
		return deleteAndRelease(ctx, cfg, stderr, inv, runtime, args)
	}
	return execRuntime(runtime, args)
}

// prepare acquires the requested volumes and rewrites config.json. No
// request: nothing is written.
func prepare(ctx context.Context, cfg *config.Config, log *slog.Logger, inv Invocation, runtime string) error {
	if inv.ID == "" {
		return errors.New("mooring-runtime: no container id")
	}
	s, mode, err := readSpec(inv.Bundle)
	if err != nil {
		return err
	}
	reqs, err := request(cfg, s)
	if err != nil || len(reqs) == 0 {
		return err
	}
	rootPath, err := s.rootPath(inv.Bundle)
	if err != nil {
		return err
	}
	// Before Acquire: a refused target attaches nothing.
	dest, err := resolveTargets(rootPath, reqs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := volume.New(cfg, volume.WithLogger(log))
	if err != nil {
		return err
	}
	start, _ := volume.ProcessStart(os.Getpid())
	owner := volume.Owner{
		ID: inv.ID, Tenant: cfg.DefaultTenant, Frontend: "shim",
		// Alive while this process (which becomes `runtime create`) runs,
		// then while the runtime keeps the container's state.
		PID: os.Getpid(), PIDStart: start,
		StatePath: filepath.Join(stateRoot(inv.Root, runtime), inv.ID, "state.json"),
	}
	staged, err := m.Acquire(ctx, owner, reqs)
	if err != nil {
		return err
	}
	if err := rewrite(s, staged, dest); err == nil {
		err = writeSpec(inv.Bundle, s, mode)
	}
	if err != nil {
		return errors.Join(err, m.Release(context.WithoutCancel(ctx), owner.ID))
	}
	log.Info("volumes added to the spec", "container", inv.ID, "volumes", len(staged))
	return nil
}

// request reads the container's request: the annotations, else (only when
// the admin allows it) the env MOORING_VOLUMES.
func request(cfg *config.Config, s *spec) ([]annotations.Volume, error) {
	ann := s.annotations()
	if annotations.IsCRISandbox(ann) {
		return nil, nil
	}
	reqs, err := annotations.FromAnnotations(ann, annotations.CRIContainerName(ann))
	if err != nil || reqs != nil || !cfg.AllowEnvRequests {
		return reqs, err
	}
	for _, e := range s.env() {
		if v, ok := strings.CutPrefix(e, annotations.EnvVar+"="); ok {
			reqs, err := annotations.Parse(v)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", annotations.EnvVar, err)
			}
			return reqs, nil
		}
	}
	return nil, nil
}

// rewrite adds a bind mount per staged volume, at its target resolved in
// the rootfs (dest), and the poststop hook that releases them.
func rewrite(s *spec, staged []volume.Staged, dest map[string]string) error {
	for _, st := range staged {
		d, ok := dest[st.Target]
		if !ok {
			return fmt.Errorf("volume %s: target %s was not resolved in the rootfs", st.Volume, st.Target)
		}
		if s.hasMount(st.Source, d) {
			continue
		}
		opts := []string{"rbind", "nosuid", "nodev"}
		if st.ReadOnly {
			opts = append(opts, "ro")
		}
		if err := s.addMount(specs.Mount{Destination: d, Type: "bind", Source: st.Source, Options: opts}); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find mooring next to the shim: %w", err)
	}
	hook := specs.Hook{Path: filepath.Join(filepath.Dir(self), "mooring"), Args: []string{"mooring", "hook", "poststop"}}
	if p := os.Getenv(config.EnvPath); p != "" {
		hook.Env = []string{config.EnvPath + "=" + p}
	}
	return s.addHook("poststop", hook)
}

// deleteAndRelease runs `runtime delete` as a child, then releases the
// container's volumes (idempotent: poststop may have done it).
func deleteAndRelease(ctx context.Context, cfg *config.Config, stderr io.Writer, inv Invocation, runtime string, args []string) error {
	cmd := exec.CommandContext(ctx, runtime, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	if inv.ID != "" {
		log, closer := openLog(cfg, stderr)
		defer closer.Close()
		if m, err := volume.New(cfg, volume.WithLogger(log)); err == nil {
			if err := m.Release(context.WithoutCancel(ctx), inv.ID); err != nil {
				log.Error("release after delete", "container", inv.ID, "error", err)
			}
		}
	}
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) {
		return &ExitError{Code: exitErr.ExitCode(), Err: runErr}
	}
	return runErr
}

// realRuntime finds the first configured runtime that exists and is not
// this shim.
func realRuntime(candidates []string) (string, error) {
	self, _ := os.Executable()
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if abs, err := filepath.EvalSymlinks(path); err == nil && self != "" {
			if me, err := filepath.EvalSymlinks(self); err == nil && me == abs {
				continue
			}
		}
		return path, nil
	}
	return "", fmt.Errorf("mooring-runtime: none of the configured runtimes %v is installed", candidates)
}

// stateRoot is where the real runtime keeps container state.
func stateRoot(root, runtime string) string {
	if root != "" {
		return root
	}
	if filepath.Base(runtime) == "crun" {
		return "/run/crun"
	}
	return "/run/runc"
}

func execRuntime(runtime string, args []string) error {
	err := syscall.Exec(runtime, append([]string{runtime}, args...), os.Environ())
	return fmt.Errorf("mooring-runtime: exec %s: %w", runtime, err)
}

func openLog(cfg *config.Config, stderr io.Writer) (*slog.Logger, io.Closer) {
	log, closer, err := logging.Open(cfg.LogFile, "shim", stderr)
	if err != nil {
		return log, io.NopCloser(nil)
	}
	return log, closer
}

// fail reports an error where the engine will show it: runc's --log in
// its --log-format (containerd and docker read it), stderr, and mooring's
// log.
func fail(inv Invocation, stderr io.Writer, log *slog.Logger, err error) error {
	msg := "mooring: " + err.Error()
	fmt.Fprintln(stderr, msg)
	if log != nil {
		log.Error("refused", "container", inv.ID, "error", err)
	}
	if inv.Log != "" {
		writeRuntimeLog(inv.Log, inv.LogFormat, msg)
	}
	return &ExitError{Code: 1, Err: err}
}
