package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/harden"
	"github.com/mooring-dev/mooring/internal/logging"
	"github.com/mooring-dev/mooring/internal/nsmount"
	"github.com/mooring-dev/mooring/internal/oci"
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
// --config PATH.
func Run(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) error {
	if err := harden.Process(config.EnvPath, "MOORING_FAILPOINT"); err != nil {
		return err
	}
	if len(args) > 0 && args[0] == StageCheckMounts {
		return checkMounts(stdin, args[1:])
	}
	stage, configPath, err := parseArgs(args)
	if err != nil {
		return err
	}
	state, err := oci.ReadState(stdin)
	if err != nil {
		return err
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	log, closer, lerr := logging.Open(cfg.LogFile, "hook", stderr)
	if lerr == nil {
		defer closer.Close()
	}
	log = log.With("stage", stage, "container", state.ID)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := volume.New(cfg, volume.WithLogger(log))
	if err != nil {
		return err
	}
	switch stage {
	case StageCreateRuntime, StagePrestart:
		err = create(ctx, m, log, state)
	case StagePoststop:
		err = m.Release(ctx, state.ID)
	}
	if err != nil {
		log.Error("hook failed", "error", err)
		return fmt.Errorf("%s hook for container %s: %w", stage, state.ID, err)
	}
	return nil
}

func parseArgs(args []string) (stage, configPath string, err error) {
	if len(args) == 0 {
		return "", "", errors.New("hook: want a stage: createRuntime, prestart or poststop")
	}
	stage = args[0]
	switch stage {
	case StageCreateRuntime, StagePrestart, StagePoststop:
	default:
		return "", "", fmt.Errorf("hook: unknown stage %q (want createRuntime, prestart or poststop)", stage)
	}
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		switch {
		case rest[i] == "--config" && i+1 < len(rest):
			configPath = rest[i+1]
			i++
		case strings.HasPrefix(rest[i], "--config="):
			configPath = strings.TrimPrefix(rest[i], "--config=")
		default:
			return "", "", fmt.Errorf("hook: unknown argument %q", rest[i])
		}
	}
	return stage, configPath, nil
}

// create acquires the requested volumes and mounts them into the
// container; on failure it releases what it acquired.
func create(ctx context.Context, m *volume.Manager, log *slog.Logger, state *specs.State) error {
	spec, err := oci.LoadSpec(state.Bundle)
	if err != nil {
		return err
	}
	ann := state.Annotations
	if len(ann) == 0 {
		ann = spec.Annotations
	}
	if annotations.IsCRISandbox(ann) {
		return nil
	}
	reqs, err := annotations.FromAnnotations(ann, annotations.CRIContainerName(ann))
	if err != nil {
		return err
	}
	root, err := oci.RootPath(state.Bundle, spec.Root)
	if err != nil {
		return err
	}
	reqs = notYetMounted(reqs, spec, m.Config().RunDir, root)
	if len(reqs) == 0 {
		return nil
	}
	if state.Pid <= 0 {
		return errors.New("no container process in the OCI state (the hook must run at createRuntime or prestart)")
	}
	start, err := volume.ProcessStart(state.Pid)
	if err != nil {
		return err
	}
	owner := volume.Owner{ID: state.ID, Tenant: m.Config().DefaultTenant, Frontend: "hook", PID: state.Pid, PIDStart: start}
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
		if rerr := m.Release(context.WithoutCancel(ctx), owner.ID); rerr != nil {
			return fmt.Errorf("%w (and releasing the volumes failed: %w; run mooring gc)", err, rerr)
		}
		return err
	}
	for _, s := range staged {
		log.Info("volume mounted", "volume", s.Volume, "target", s.Target, "readOnly", s.ReadOnly)
	}
	return nil
}

// notYetMounted drops requests the shim already turned into bind mounts
// from mooring's staging dir, so a container with both never attaches twice.
// The shim writes each target resolved in the rootfs (see oci.MkdirInRoot),
// so a request also matches a staged mount at its target's resolved path.
func notYetMounted(reqs []annotations.Volume, spec *specs.Spec, runDir, root string) []annotations.Volume {
	staging := filepath.Join(runDir, "mnt") + "/"
	staged := map[string]bool{}
	for _, mnt := range spec.Mounts {
		if strings.HasPrefix(mnt.Source, staging) {
			staged[mnt.Destination] = true
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
