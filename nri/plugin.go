package nri

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/hook"
	"github.com/mooring-dev/mooring/volume"
)

// Frontend marks the owners this plugin creates.
const Frontend = "nri"

// checkHookTimeout bounds the createRuntime target check, in seconds (it
// reads two mount tables).
const checkHookTimeout = 10

// DefaultRequestTimeout stays below NRI's default 2 s request timeout: a
// plugin that exceeds it is dropped and the container starts without its
// volume.
const DefaultRequestTimeout = 1500 * time.Millisecond

// Plugin handles the NRI events mooring needs. Only the event methods it
// implements are subscribed (the stub detects them).
type Plugin struct {
	log     *slog.Logger
	timeout time.Duration
	// checkHook is the host path of the mooring binary the createRuntime
	// target check runs (see hook.StageCheckMounts).
	checkHook string

	// opts make every manager the plugin uses: the one it starts with and
	// one made from a config the runtime passes (the operation metrics'
	// observer must count on both).
	opts []volume.Option

	mu sync.Mutex
	m  *volume.Manager
	// runtime is the name the runtime gave in Configure.
	runtime string
	// live are the containers known to exist: listed by the last
	// Synchronize or created since, and not removed since.
	live   map[string]bool
	synced bool
	// released wakes endLingering after a release: a volume may have
	// started to linger, with a period that ends before the timer's.
	released chan struct{}
}

// NewPlugin returns a plugin acquiring through m. checkHook is the
// mooring binary (a host path) that checks, at createRuntime, where the
// runtime mounted each volume. opts, those m was made with, also make the
// manager of a config the runtime passes (Configure).
func NewPlugin(m *volume.Manager, log *slog.Logger, timeout time.Duration, checkHook string, opts ...volume.Option) *Plugin {
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	return &Plugin{m: m, log: log, timeout: timeout, checkHook: checkHook, opts: opts, live: map[string]bool{}, released: make(chan struct{}, 1)}
}

// Configure takes the admin config the runtime passes (the contents of
// <plugin_config_path>/<idx>-<name>.conf), if any, instead of the one the
// plugin was started with.
func (p *Plugin) Configure(_ context.Context, cfg, runtime, version string) (api.EventMask, error) {
	p.log.Info("configured", "runtime", runtime, "version", version, "own config", cfg != "")
	p.mu.Lock()
	p.runtime = runtime
	p.mu.Unlock()
	if strings.TrimSpace(cfg) == "" {
		return 0, nil
	}
	c, err := config.Parse([]byte(cfg))
	if err != nil {
		return 0, toRuntime(fmt.Errorf("config from the runtime: %w", err))
	}
	m, err := volume.New(c, append([]volume.Option{volume.WithLogger(p.log)}, p.opts...)...)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.m = m
	p.mu.Unlock()
	return 0, nil
}

// manager returns the current volume manager.
func (p *Plugin) manager() *volume.Manager {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m
}

// Stats reports the volumes and pools of the current manager (whose
// config the runtime may have replaced): the metrics read them here.
func (p *Plugin) Stats(ctx context.Context, tenant, name string) ([]volume.VolumeStats, []volume.PoolUsage, error) {
	return p.manager().Stats(ctx, tenant, name)
}

// Synchronize reconciles the journal against the runtime's containers:
// claims of containers it no longer has (or has stopped) are released.
func (p *Plugin) Synchronize(ctx context.Context, _ []*api.PodSandbox, containers []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.live = map[string]bool{}
	for _, c := range containers {
		if c.GetState() != api.ContainerState_CONTAINER_STOPPED {
			p.live[c.GetId()] = true
		}
	}
	p.mu.Unlock()
	rep, err := p.manager().Reconcile(ctx, p.alive)
	p.mu.Lock()
	p.synced = true
	p.mu.Unlock()
	p.log.Info("synchronized", "containers", len(containers), "released", len(rep.Released), "kept", rep.Kept, "error", err)
	// A failed reconcile must not fail the connection: the next one retries.
	return nil, nil
}

// CreateContainer acquires the container's volumes and adds them as bind
// mounts. An error fails the container's creation with mooring's reason.
func (p *Plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	reqs, err := annotations.FromAnnotations(pod.GetAnnotations(), ctr.GetName())
	if err != nil {
		return nil, nil, p.refuse(pod, ctr, err)
	}
	if len(reqs) == 0 {
		return nil, nil, nil
	}
	if err := p.checkBlock(reqs); err != nil {
		return nil, nil, p.refuse(pod, ctr, err)
	}
	// Live before Acquire, so a concurrent periodic reconcile never takes
	// the claim being made.
	p.setLive(ctr.GetId(), true)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	owner := podOwner(pod, ctr)
	owner.Tenant = pod.GetNamespace()
	staged, err := p.manager().Acquire(ctx, owner, reqs)
	if err != nil {
		p.setLive(ctr.GetId(), false)
		return nil, nil, p.refuse(pod, ctr, err)
	}
	adjust := adjustment(staged, p.checkHook)
	p.log.Info("volumes added", "pod", pod.GetNamespace()+"/"+pod.GetName(), "container", ctr.GetName(), "id", ctr.GetId(), "volumes", len(staged))
	return adjust, nil, nil
}

// dropsDeviceRules are runtimes known to apply an adjustment's devices
// but not its device cgroup rules (CRI-O 1.34, NRI 0.9): there a
// read-only raw block volume would be writable.
var dropsDeviceRules = []string{"cri-o"}

// checkBlock refuses, before anything is attached, a read-only raw block
// volume on a runtime that would not apply its rules. The createRuntime
// check catches any other runtime that drops them, later.
func (p *Plugin) checkBlock(reqs []annotations.Volume) error {
	p.mu.Lock()
	runtime := p.runtime
	p.mu.Unlock()
	if !slices.Contains(dropsDeviceRules, runtime) {
		return nil
	}
	for _, r := range reqs {
		if r.IsBlock() && r.ReadOnly {
			return fmt.Errorf("volume %q: a read-only raw block volume needs the plugin's device cgroup rules, which %s does not apply; ask for it read-write, or run the pod on containerd", r.Name, runtime)
		}
	}
	return nil
}

// adjustment adds a bind mount per staged volume and the createRuntime
// hook (checkHook, the mooring binary) that applies the target rule to
// where the runtime mounted them: the runtime resolves each target in a
// rootfs the plugin never sees. A raw block volume gets a device instead
// (addBlockDevice); the same check makes sure a read-only one's rules
// reached the spec.
func adjustment(staged []volume.Staged, checkHook string) *api.ContainerAdjustment {
	adjust := &api.ContainerAdjustment{}
	check := &api.Hook{
		Path:    checkHook,
		Args:    []string{"mooring", "hook", hook.StageCheckMounts},
		Timeout: api.Int(checkHookTimeout),
	}
	for _, s := range staged {
		switch {
		case s.Block == nil:
			adjust.AddMount(&api.Mount{Destination: s.Target, Type: "bind", Source: s.Source, Options: s.MountOptions()})
			check.Args = append(check.Args, s.Source)
		case s.ReadOnly:
			check.Args = append(check.Args, fmt.Sprintf("%s%d:%d", hook.ReadOnlyDeviceArg, s.Block.Major, s.Block.Minor))
			fallthrough
		default:
			addBlockDevice(adjust, s)
		}
	}
	if len(check.Args) > 3 {
		adjust.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{check}})
	}
	return adjust
}

// addBlockDevice gives the container a raw block volume's device node at
// its target, created by the runtime (mooring never writes into the
// root), with the numbers of exactly the volume's device. The runtime
// allows the device it adds in the device cgroup ("rwm", whatever the
// node's mode says), so the plugin's own rules follow that one: allow
// "rw", or for read-only "r" and a rule that denies writes (the last
// matching rule wins).
func addBlockDevice(adjust *api.ContainerAdjustment, s volume.Staged) {
	major, minor := int64(s.Block.Major), int64(s.Block.Minor)
	mode, access := os.FileMode(0o660), "rw"
	if s.ReadOnly {
		mode, access = 0o440, "r"
	}
	var root uint32
	adjust.AddDevice(&api.LinuxDevice{
		Path: s.Target, Type: "b", Major: major, Minor: minor,
		FileMode: api.FileMode(mode), Uid: api.UInt32(root), Gid: api.UInt32(root),
	})
	rules := []*api.LinuxDeviceCgroup{{Allow: true, Type: "b", Major: api.Int64(major), Minor: api.Int64(minor), Access: access}}
	if s.ReadOnly {
		rules = append(rules, &api.LinuxDeviceCgroup{Allow: false, Type: "b", Major: api.Int64(major), Minor: api.Int64(minor), Access: "w"})
	}
	if adjust.Linux == nil {
		adjust.Linux = &api.LinuxContainerAdjustment{}
	}
	if adjust.Linux.Resources == nil {
		adjust.Linux.Resources = &api.LinuxResources{}
	}
	adjust.Linux.Resources.Devices = append(adjust.Linux.Resources.Devices, rules...)
}

// podOwner is the plugin's owner of a container: its id, scoped by the
// pod's namespace. The runtime's container ids are unique, so liveness
// (p.live) goes by id alone.
func podOwner(pod *api.PodSandbox, ctr *api.Container) volume.Owner {
	return volume.Owner{ID: ctr.GetId(), Scope: pod.GetNamespace(), Frontend: Frontend}
}

// StopContainer releases the container's volumes.
func (p *Plugin) StopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	return nil, p.release(ctx, pod, ctr)
}

// RemoveContainer releases (again: idempotent) and forgets the container.
func (p *Plugin) RemoveContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.setLive(ctr.GetId(), false)
	return p.release(ctx, pod, ctr)
}

// Reconcile releases claims of containers that are gone; it runs
// periodically between Synchronize calls. Before the first Synchronize
// nothing is known, so it does nothing.
func (p *Plugin) Reconcile(ctx context.Context) (volume.ReconcileReport, error) {
	p.mu.Lock()
	synced := p.synced
	p.mu.Unlock()
	if !synced {
		return volume.ReconcileReport{}, nil
	}
	return p.manager().Reconcile(ctx, p.alive)
}

func (p *Plugin) release(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	defer p.wakeLingering()
	if err := p.manager().Release(ctx, podOwner(pod, ctr)); err != nil {
		p.log.Error("release", "id", ctr.GetId(), "error", err)
		return toRuntime(fmt.Errorf("release volumes of %s: %w", ctr.GetName(), err))
	}
	return nil
}

// alive judges owners: this plugin's by what the runtime said, the other
// front-ends' by their recorded process or state file.
func (p *Plugin) alive(o volume.Owner) bool {
	if o.Frontend != Frontend {
		return volume.OwnerAlive(o)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live[o.ID]
}

func (p *Plugin) setLive(id string, live bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if live {
		p.live[id] = true
	} else {
		delete(p.live, id)
	}
}

func (p *Plugin) refuse(pod *api.PodSandbox, ctr *api.Container, err error) error {
	p.log.Error("refused", "pod", pod.GetNamespace()+"/"+pod.GetName(), "container", ctr.GetName(), "error", err)
	return toRuntime(err)
}

// toRuntime names mooring in an error the plugin returns to the runtime:
// the runtime shows it as the reason a container failed, among its other
// plugins' and its own errors. It is the plugin's one message boundary
// (the binary's main prefixes only what Run returns).
func toRuntime(err error) error { return fmt.Errorf("mooring: %w", err) }
