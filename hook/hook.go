package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/harden"
	"github.com/mooring-dev/mooring/internal/logging"
	"github.com/mooring-dev/mooring/internal/nsmount"
	"github.com/mooring-dev/mooring/internal/oci"
	"github.com/mooring-dev/mooring/internal/runtimecmd"
	"github.com/mooring-dev/mooring/volume"
)

// Stages.
const (
	StageCreateRuntime = "createRuntime"
	StagePrestart      = "prestart"
	StagePoststop      = "poststop"
)

// timeout bounds one hook run (a first use formats and checks a volume).
const timeout = 2 * time.Minute

// Run runs one hook stage: args are the stage and optionally
// --config PATH, --root DIR (the runtime's state root; default: read from
// the command line of the runtime running the hook) and --frontend
// (hook, or shim in the poststop hook the shim adds: it releases the
// shim's claims).
func Run(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) error {
	if err := harden.Process(append([]string{config.EnvPath}, failpoint.Env()...)...); err != nil {
		return err
	}
	if len(args) > 0 && args[0] == StageCheckMounts {
		return checkMounts(stdin, args[1:])
	}
	a, err := parseArgs(args)
	if err != nil {
		return fmt.Errorf("hook command line: %w", err)
	}
	state, err := oci.ReadState(stdin)
	if err != nil {
		return err
	}
	// Most containers ask for nothing: they pay for no config parse, log
	// file or journal. The hook acquires only what the annotations ask,
	// so at poststop a container that asks for nothing holds nothing of
	// the hook's (the shim's poststop releases the shim's claims, which
	// may come from env). A bad request is reported below, logged.
	var want *request
	var reqErr error
	if a.stage != StagePoststop || a.frontend == "hook" {
		if want, reqErr = readRequest(state); reqErr == nil && want == nil {
			return nil
		}
	}
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return err
	}
	log, closer, lerr := logging.Open(cfg.LogFile, "hook", stderr)
	if lerr == nil {
		defer closer.Close()
	}
	log = log.With("stage", a.stage, "container", state.ID)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := volume.New(cfg, volume.WithLogger(log))
	if err != nil {
		return err
	}
	owner := volume.Owner{ID: state.ID, Scope: a.root, Frontend: a.frontend}
	switch {
	case reqErr != nil && a.stage != StagePoststop:
		err = reqErr
	case a.stage == StagePoststop && owner.Scope == "":
		// podman runs poststop hooks itself: the parent is no runtime.
		err = m.ReleaseExited(ctx, owner)
	case a.stage == StagePoststop:
		err = m.Release(ctx, owner)
	case owner.Scope == "":
		// runc and crun run createRuntime hooks as their children.
		if owner.Scope, err = parentRuntimeRoot(); err == nil {
			err = create(ctx, m, log, state, want, owner)
		}
	default:
		err = create(ctx, m, log, state, want, owner)
	}
	if err != nil {
		log.Error("hook failed", "error", err)
		return fmt.Errorf("%s hook for container %s: %w", a.stage, state.ID, err)
	}
	return nil
}

// hookArgs is the hook's command line.
type hookArgs struct {
	stage, configPath, root, frontend string
}

func parseArgs(args []string) (hookArgs, error) {
	a := hookArgs{frontend: "hook"}
	if len(args) == 0 {
		return a, errors.New("want a stage: createRuntime, prestart or poststop")
	}
	a.stage = args[0]
	switch a.stage {
	case StageCreateRuntime, StagePrestart, StagePoststop:
	default:
		return a, fmt.Errorf("unknown stage %q (want createRuntime, prestart or poststop)", a.stage)
	}
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		arg := rest[i]
		name, value, ok := strings.Cut(arg, "=")
		if !ok && i+1 < len(rest) {
			value = rest[i+1]
			i++
		}
		switch name {
		case "--config":
			a.configPath = value
		case "--root":
			a.root = value
		case "--frontend":
			a.frontend = value
		default:
			return a, fmt.Errorf("unknown argument %q", arg)
		}
		if value == "" {
			return a, fmt.Errorf("%s needs a value", name)
		}
	}
	switch {
	case a.frontend != "hook" && a.frontend != "shim":
		return a, fmt.Errorf("--frontend %q: want hook or shim", a.frontend)
	case a.root != "" && (!filepath.IsAbs(a.root) || filepath.Clean(a.root) != a.root):
		return a, fmt.Errorf("--root %q is not an absolute clean path", a.root)
	}
	return a, nil
}

// parentRuntimeRoot reads the state root from the command line of the
// runtime that runs the hook (runc and crun run hooks as their children):
// the OCI state does not say it, and container ids are unique only
// within one root.
func parentRuntimeRoot() (string, error) {
	proc := "/proc/" + strconv.Itoa(os.Getppid())
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return "", fmt.Errorf("the runtime running the hook: %w", err)
	}
	raw, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return "", fmt.Errorf("the runtime running the hook: %w", err)
	}
	cwd, _ := os.Readlink(proc + "/cwd")
	argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	inv, err := runtimecmd.Parse(argv[1:], cwd)
	if err != nil {
		return "", fmt.Errorf("cannot tell the runtime root from %s's command line (give the hook --root): %w", exe, err)
	}
	return runtimecmd.StateRoot(inv.Root, exe), nil
}

// request is what a container asks for: its spec, annotations and
// volumes.
type request struct {
	spec *specs.Spec
	ann  map[string]string
	vols []annotations.Volume
}

// readRequest reads the container's request from its annotations (the
// state's, else the spec's); nil when it asks for nothing.
func readRequest(state *specs.State) (*request, error) {
	spec, err := oci.LoadSpec(state.Bundle)
	if err != nil {
		return nil, err
	}
	ann := state.Annotations
	if len(ann) == 0 {
		ann = spec.Annotations
	}
	if annotations.IsCRISandbox(ann) {
		return nil, nil
	}
	vols, err := annotations.FromAnnotations(ann, annotations.CRIContainerName(ann))
	if err != nil || len(vols) == 0 {
		return nil, err
	}
	return &request{spec: spec, ann: ann, vols: vols}, nil
}

// create acquires the requested volumes and mounts them into the
// container; on failure it releases what it acquired.
func create(ctx context.Context, m *volume.Manager, log *slog.Logger, state *specs.State, want *request, owner volume.Owner) (err error) {
	owner.Tenant, err = annotations.Tenant(want.ann, m.Config().DefaultTenant)
	if err != nil {
		return err
	}
	spec := want.spec
	root, err := oci.RootPath(state.Bundle, spec.Root)
	if err != nil {
		return err
	}
	reqs := notYetMounted(want.vols, spec, m.IsStaging, root)
	if len(reqs) == 0 {
		return nil
	}
	if err := refuseBlock(reqs); err != nil {
		return err
	}
	if state.Pid <= 0 {
		return errors.New("no container process in the OCI state (the hook must run at createRuntime or prestart)")
	}
	start, err := volume.ProcessStart(state.Pid)
	if err != nil {
		return err
	}
	owner.PID, owner.PIDStart = state.Pid, start
	staged, err := m.Acquire(ctx, owner, reqs)
	if err != nil {
		return err
	}
	mounts := make([]nsmount.Mount, len(staged))
	for i, s := range staged {
		mounts[i] = nsmount.Mount{Source: s.Source, Target: s.Target, ReadOnly: s.ReadOnly}
	}
	if err := nsmount.Into(state.Pid, start, root, mounts); err != nil {
		// One line for the runtime's error, even when the undo fails too.
		if rerr := m.Release(context.WithoutCancel(ctx), owner); rerr != nil {
			return fmt.Errorf("%w (and releasing the volumes failed: %w; run mooring gc)", err, rerr)
		}
		return err
	}
	for _, s := range staged {
		log.Info("volume mounted", "volume", s.Volume, "target", s.Target, "readOnly", s.ReadOnly)
	}
	return nil
}

// refuseBlock refuses raw block requests before anything is attached: a
// device node in the container is only usable with a device cgroup rule,
// which the runtime sets from the spec before the hooks run; a hook
// cannot add one on this host (cgroup v1 devices.allow of the container's
// cgroup is writable only from outside its namespaces, and on cgroup v2
// the rule is the runtime's eBPF program).
func refuseBlock(reqs []annotations.Volume) error {
	for _, r := range reqs {
		if r.IsBlock() {
			return fmt.Errorf("volume %q: mode block is not served by the OCI hook (a hook cannot allow a device in the container's device cgroup); run the container with mooring-runtime (the shim) or, under Kubernetes, the NRI plugin mooring-nri", r.Name)
		}
	}
	return nil
}

// notYetMounted drops requests the shim already turned into bind mounts
// of staging directories (isStaging) or raw block nodes, so a container
// with both never attaches twice.
// The shim writes each target resolved in the rootfs (see oci.MkdirInRoot),
// so a request also matches a staged mount at its target's resolved path.
func notYetMounted(reqs []annotations.Volume, spec *specs.Spec, isStaging func(path string) bool, root string) []annotations.Volume {
	staged := map[string]bool{}
	for _, mnt := range spec.Mounts {
		if isStaging(mnt.Source) {
			staged[mnt.Destination] = true
		}
	}
	if spec.Linux != nil {
		// The shim's raw block nodes. Skipping a request gives the
		// container nothing of mooring's, so no check of the numbers is
		// needed here.
		for _, d := range spec.Linux.Devices {
			if d.Type == "b" {
				staged[d.Path] = true
			}
		}
	}
	if len(staged) == 0 {
		return reqs
	}
	var out []annotations.Volume
	for _, r := range reqs {
		if !staged[r.Target] && !staged[resolvedTarget(root, r.Target)] {
			out = append(out, r)
		}
	}
	return out
}

// resolvedTarget is where target resolves inside root, or "" when it does
// not resolve under the target rule (then it is not a shim's mount).
func resolvedTarget(root, target string) string {
	dir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer dir.Close()
	t, err := oci.ResolveInRoot(dir, target)
	if err != nil {
		return ""
	}
	t.File.Close()
	return t.InRoot
}
