package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/logging"
	"github.com/mooring-dev/mooring/internal/runtimecmd"
	"github.com/mooring-dev/mooring/volume"
)

// timeout bounds the shim's own work around the runtime.
const timeout = 2 * time.Minute

// Frontend marks the owners the shim creates.
const Frontend = "shim"

// runtimePath is where a runtime configured by name is looked up; the
// inherited PATH is not trusted.
var runtimePath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// ExitError carries the real runtime's exit status (create, delete) or
// the shim's own failure (1).
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
// create with volumes and delete it does not return on success: it execs
// the real runtime.
func Run(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	inv, err := runtimecmd.Parse(args, cwd)
	if err != nil {
		return fail(inv, stderr, nil, err)
	}
	cfg, err := config.Load("")
	if err != nil {
		return fail(inv, stderr, nil, err)
	}
	runtime, err := realRuntime(cfg.Runtimes)
	if err != nil {
		return fail(inv, stderr, nil, err)
	}
	switch {
	case inv.ID == "":
		// runc create --help, runc --version: nothing to do.
	case inv.Command == "create" || inv.Command == "run":
		log, closer := openLog(cfg, stderr)
		defer closer.Close()
		owner, err := prepare(ctx, cfg, log, inv, runtime)
		if err != nil {
			return fail(inv, stderr, log, err)
		}
		if owner != nil && inv.Command == "create" {
			return createAndRecord(ctx, cfg, log, inv, runtime, args, *owner)
		}
	case inv.Command == "delete":
		return deleteAndRelease(ctx, cfg, stderr, inv, runtime, args)
	}
	return fail(inv, stderr, nil, execRuntime(runtime, args))
}

// owner is the shim's owner of container id in the runtime's state root.
// The runtime's state directory for the container proves it exists.
func owner(inv runtimecmd.Invocation, runtime string) volume.Owner {
	scope := runtimecmd.StateRoot(inv.Root, runtime)
	return volume.Owner{ID: inv.ID, Scope: scope, Frontend: Frontend, StatePath: filepath.Join(scope, inv.ID)}
}

// prepare acquires the requested volumes and rewrites config.json; it
// returns the owner it acquired for. No request: nothing is written and
// the owner is nil.
func prepare(ctx context.Context, cfg *config.Config, log *slog.Logger, inv runtimecmd.Invocation, runtime string) (*volume.Owner, error) {
	if inv.Config != "" {
		return nil, fmt.Errorf("--config %s: mooring-runtime reads the bundle's config.json only", inv.Config)
	}
	s, mode, err := readSpec(inv.Bundle)
	if err != nil {
		return nil, err
	}
	reqs, tenant, err := request(cfg, s)
	if err != nil || len(reqs) == 0 {
		return nil, err
	}
	rootPath, err := s.rootPath(inv.Bundle)
	if err != nil {
		return nil, err
	}
	// Before Acquire: a refused target attaches nothing.
	dest, err := resolveTargets(rootPath, reqs)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := volume.New(cfg, volume.WithLogger(log))
	if err != nil {
		return nil, err
	}
	o := owner(inv, runtime)
	o.Tenant = tenant
	// Alive while this process (which becomes or runs `runtime create`)
	// runs; create then records the container's own process.
	o.PID = os.Getpid()
	o.PIDStart, _ = volume.ProcessStart(o.PID)
	staged, err := m.Acquire(ctx, o, reqs)
	if err != nil {
		return nil, err
	}
	if err := rewrite(s, staged, dest, o.Scope); err == nil {
		err = writeSpec(inv.Bundle, s, mode)
	}
	if err != nil {
		return nil, errors.Join(err, m.Release(context.WithoutCancel(ctx), o))
	}
	log.Info("volumes added to the spec", "container", inv.ID, "tenant", tenant, "volumes", len(staged))
	return &o, nil
}

// request reads the container's request and its tenant: the annotations
// (tenant: the pod's namespace for a CRI container, else the default
// tenant), else, only when the admin allows it, the env MOORING_VOLUMES
// (tenant: the env tenant; the image's author may have set it).
func request(cfg *config.Config, s *spec) ([]annotations.Volume, string, error) {
	ann := s.annotations()
	if annotations.IsCRISandbox(ann) {
		return nil, "", nil
	}
	reqs, err := annotations.FromAnnotations(ann, annotations.CRIContainerName(ann))
	if err != nil {
		return nil, "", err
	}
	if reqs != nil {
		tenant, err := annotations.Tenant(ann, cfg.DefaultTenant)
		return reqs, tenant, err
	}
	if !cfg.AllowEnvRequests {
		return nil, "", nil
	}
	for _, e := range s.env() {
		v, ok := strings.CutPrefix(e, annotations.EnvVar+"=")
		if !ok {
			continue
		}
		if annotations.IsCRI(ann) {
			return nil, "", fmt.Errorf("env %s: not served for Kubernetes containers (an image may set it); use the %s annotation", annotations.EnvVar, annotations.KeyPod)
		}
		reqs, err := annotations.Parse(v)
		if err != nil {
			return nil, "", fmt.Errorf("env %s: %w", annotations.EnvVar, err)
		}
		return reqs, cfg.EnvTenant, nil
	}
	return nil, "", nil
}

// rewrite adds the staged volumes' mounts (see specMounts) and raw block
// nodes (specDevices) that the spec does not have yet (a retried create),
// and the poststop hook that
// releases them (as the shim's owner in the runtime root scope).
func rewrite(s *spec, staged []volume.Staged, dest map[string]string, scope string) error {
	mounts, err := specMounts(staged, dest)
	if err != nil {
		return err
	}
	for _, mnt := range mounts {
		if s.hasMount(mnt.Source, mnt.Destination) {
			continue
		}
		if err := s.addMount(mnt); err != nil {
			return err
		}
	}
	nodes, err := specDevices(staged, dest)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := s.addBlockNode(n); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find mooring next to the shim: %w", err)
	}
	hook := specs.Hook{
		Path: filepath.Join(filepath.Dir(self), "mooring"),
		Args: []string{"mooring", "hook", "poststop", "--frontend", Frontend, "--root", scope},
	}
	if p := os.Getenv(config.EnvPath); p != "" {
		hook.Env = []string{config.EnvPath + "=" + p}
	}
	return s.addHook("poststop", hook)
}

// createAndRecord runs `runtime create` as a child (not exec: the shim
// must outlive it), then records the container's init process as the
// owner's, so gc and the NRI plugin see the container alive by its
// process whatever the runtime's state layout (crun writes no
// state.json). A failed create releases the volumes once the container
// is gone (crun runs no poststop after a failed create).
func createAndRecord(ctx context.Context, cfg *config.Config, log *slog.Logger, inv runtimecmd.Invocation, runtime string, args []string, o volume.Owner) error {
	runErr := runChild(ctx, runtime, args)
	m, err := volume.New(cfg, volume.WithLogger(log))
	if err != nil {
		return errors.Join(runErr, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if runErr != nil {
		releaseIfGone(ctx, m, log, o, "failed create")
		return runErr
	}
	pid, err := initPID(ctx, inv, runtime, o.Scope)
	if err == nil {
		o.PID = pid
		o.PIDStart, err = volume.ProcessStart(pid)
	}
	if err == nil {
		err = m.UpdateOwner(ctx, o)
	}
	if err != nil {
		// The state directory still proves the container alive.
		log.Error("record the container's process", "container", inv.ID, "error", err)
	}
	return nil
}

// initPID reads the container's init pid from --pid-file, else from
// `runtime state`.
func initPID(ctx context.Context, inv runtimecmd.Invocation, runtime, root string) (int, error) {
	if inv.PIDFile != "" {
		b, err := os.ReadFile(inv.PIDFile)
		if err != nil {
			return 0, fmt.Errorf("pid file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("pid file %s: %q is not a pid", inv.PIDFile, b)
		}
		return pid, nil
	}
	out, err := exec.CommandContext(ctx, runtime, "--root", root, "state", inv.ID).Output()
	if err != nil {
		return 0, fmt.Errorf("%s state %s: %w", runtime, inv.ID, err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Pid <= 0 {
		return 0, fmt.Errorf("%s state %s: no pid in %q", runtime, inv.ID, out)
	}
	return st.Pid, nil
}

// deleteAndRelease runs `runtime delete` as a child, then releases the
// container's volumes (idempotent: poststop may have done it) if the
// runtime deleted it or it is gone anyway. A delete the runtime refused
// (a running container without --force) keeps the claims.
func deleteAndRelease(ctx context.Context, cfg *config.Config, stderr io.Writer, inv runtimecmd.Invocation, runtime string, args []string) error {
	runErr := runChild(ctx, runtime, args)
	log, closer := openLog(cfg, stderr)
	defer closer.Close()
	if m, err := volume.New(cfg, volume.WithLogger(log)); err == nil {
		o := owner(inv, runtime)
		if runErr == nil {
			if err := m.Release(context.WithoutCancel(ctx), o); err != nil {
				log.Error("release after delete", "container", inv.ID, "error", err)
			}
		} else {
			releaseIfGone(context.WithoutCancel(ctx), m, log, o, "failed delete")
		}
	}
	return runErr
}

// releaseIfGone releases the owner's volumes if its container no longer
// exists in the runtime's state.
func releaseIfGone(ctx context.Context, m *volume.Manager, log *slog.Logger, o volume.Owner, after string) {
	if _, err := os.Stat(o.StatePath); !errors.Is(err, fs.ErrNotExist) {
		log.Info("volumes kept: the container still exists", "after", after, "container", o.ID, "state", o.StatePath)
		return
	}
	if err := m.Release(ctx, o); err != nil {
		log.Error("release", "after", after, "container", o.ID, "error", err)
	}
}

// runChild runs the runtime with the shim's stdio and returns its exit
// status as an ExitError.
func runChild(ctx context.Context, runtime string, args []string) error {
	cmd := exec.CommandContext(ctx, runtime, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return &ExitError{Code: exitErr.ExitCode(), Err: err}
	}
	return err
}

// realRuntime finds the first configured runtime that exists and is not
// this shim: an absolute path as given, a name in runtimePath only.
func realRuntime(candidates []string) (string, error) {
	self, _ := os.Executable()
	me, _ := filepath.EvalSymlinks(self)
	for _, c := range candidates {
		paths := []string{c}
		if !filepath.IsAbs(c) {
			paths = paths[:0]
			for _, dir := range runtimePath {
				paths = append(paths, filepath.Join(dir, c))
			}
		}
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
				continue
			}
			if abs, err := filepath.EvalSymlinks(p); err == nil && me != "" && abs == me {
				continue
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("none of the configured runtimes %v is installed (names are looked up in %s)", candidates, strings.Join(runtimePath, ":"))
}

func execRuntime(runtime string, args []string) error {
	err := syscall.Exec(runtime, append([]string{runtime}, args...), os.Environ())
	return fmt.Errorf("exec %s: %w", runtime, err)
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
func fail(inv runtimecmd.Invocation, stderr io.Writer, log *slog.Logger, err error) error {
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
