package hook

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/harden"
	"github.com/mooring-dev/mooring/internal/logging"
	"github.com/mooring-dev/mooring/internal/nsmount"
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

// maxSpecBytes bounds config.json.
const maxSpecBytes = 4 << 20

// Run runs one hook stage: args are the stage and optionally
// --config PATH.
func Run(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) error {
	if err := harden.Process(append([]string{config.EnvPath}, failpoint.Env()...)...); err != nil {
		return err
	}
	stage, configPath, err := parseArgs(args)
	if err != nil {
		return err
	}
	state, err := readState(stdin)
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

// readState decodes the OCI state: bounded, one JSON object, with the
// fields mooring uses validated. Unknown fields are allowed: runtimes add
// their own (crun does).
func readState(r io.Reader) (*specs.State, error) {
	b, err := harden.ReadAll(r, harden.MaxStdin)
	if err != nil {
		return nil, fmt.Errorf("hook: OCI state: %w", err)
	}
	return decodeState(b)
}

func decodeState(b []byte) (*specs.State, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var s specs.State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("hook: OCI state on stdin: %w", err)
	}
	if dec.More() {
		return nil, errors.New("hook: OCI state on stdin: trailing data")
	}
	switch {
	case s.ID == "":
		return nil, errors.New("hook: OCI state: no container id")
	case !filepath.IsAbs(s.Bundle) || filepath.Clean(s.Bundle) != s.Bundle:
		return nil, fmt.Errorf("hook: OCI state: bundle %q is not an absolute clean path", s.Bundle)
	case s.Pid < 0:
		return nil, fmt.Errorf("hook: OCI state: bad pid %d", s.Pid)
	}
	return &s, nil
}

// create acquires the requested volumes and mounts them into the
// container; on failure it releases what it acquired.
func create(ctx context.Context, m *volume.Manager, log *slog.Logger, state *specs.State) error {
	spec, err := loadSpec(state.Bundle)
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
	reqs = notYetMounted(reqs, spec, m.Config().RunDir)
	if len(reqs) == 0 {
		return nil
	}
	if state.Pid <= 0 {
		return errors.New("no container process in the OCI state (the hook must run at createRuntime or prestart)")
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return errors.New("config.json has no root.path")
	}
	root := spec.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(state.Bundle, root)
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
	if err := nsmount.Into(state.Pid, root, mounts); err != nil {
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

// loadSpec reads the bundle's config.json: a regular file, not a symlink,
// of bounded size.
func loadSpec(bundle string) (*specs.Spec, error) {
	f, err := os.OpenFile(filepath.Join(bundle, "config.json"), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bundle config: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("bundle config %s is not a regular file", f.Name())
	}
	b, err := harden.ReadAll(f, maxSpecBytes)
	if err != nil {
		return nil, fmt.Errorf("bundle config: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("bundle config %s: %w", f.Name(), err)
	}
	return &spec, nil
}

// notYetMounted drops requests the shim already turned into bind mounts
// from mooring's staging dir, so a container with both never attaches twice.
func notYetMounted(reqs []annotations.Volume, spec *specs.Spec, runDir string) []annotations.Volume {
	staging := filepath.Join(runDir, "mnt") + "/"
	var out []annotations.Volume
	for _, r := range reqs {
		done := false
		for _, mnt := range spec.Mounts {
			if mnt.Destination == r.Target && strings.HasPrefix(mnt.Source, staging) {
				done = true
			}
		}
		if !done {
			out = append(out, r)
		}
	}
	return out
}
