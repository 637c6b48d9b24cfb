package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// Devices are the side effects the core uses.
type Devices struct {
	Loops  devices.Loops
	FS     devices.Filesystems
	Mounts devices.Mounter
	Blocks devices.Blocks
	Data   devices.DataOps
}

// Manager runs the volume lifecycle for one host. It keeps no state in
// memory: every call reads the journal under the volume's lock, so several
// processes (hooks, shim, plugin, CLI) can share one state directory.
type Manager struct {
	cfg *config.Config
	dev Devices
	log *slog.Logger
	j   journal
	obs Observer

	mu       sync.Mutex // guards backends
	backends map[string]backends.Backend
}

// Option configures a Manager.
type Option func(*Manager)

// WithDevices replaces the real devices (unit tests use fakes).
func WithDevices(d Devices) Option { return func(m *Manager) { m.dev = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// New returns a Manager for cfg using the real devices unless WithDevices
// says otherwise.
func New(cfg *config.Config, opts ...Option) (*Manager, error) {
	if cfg == nil {
		return nil, fmt.Errorf("volume manager: no config")
	}
	m := &Manager{cfg: cfg, dev: realDevices(), log: slog.New(slog.DiscardHandler), j: journal{dir: cfg.StateDir}}
	for _, o := range opts {
		o(m)
	}
	m.j.log = m.log
	return m, nil
}

// Config returns the policy the manager enforces.
func (m *Manager) Config() *config.Config { return m.cfg }

// stagingDir is where a volume is mounted on the host, for front-ends to
// bring into containers.
func (m *Manager) stagingDir(volumeID string) string {
	return filepath.Join(m.stagingRoot(), volumeID)
}

// stagingRoot holds every staging directory.
func (m *Manager) stagingRoot() string { return filepath.Join(m.cfg.RunDir, "mnt") }

// IsStaging reports whether path is a volume's staging directory: a mount
// source a front-end took from a Staged (the hook leaves such mounts,
// which the shim put in the spec, to the runtime).
func (m *Manager) IsStaging(path string) bool {
	dir, name := filepath.Split(path)
	return name != "" && filepath.Clean(dir) == m.stagingRoot() && filepath.Clean(path) == path
}

// lockVolume takes the per-volume lock, keyed by tenant and name because
// the lock is needed before the volume (and its id) may exist. Tenant and
// name are DNS labels, so "_" cannot occur in either. The lock file of a
// volume that does not exist when the lock is released is removed: names
// a tenant asks for and is refused must not pile up files in the run dir.
// Callers check policy (admit) before they lock.
func (m *Manager) lockVolume(ctx context.Context, tenant, name string) (*fileLock, error) {
	lock, err := lockFile(ctx, filepath.Join(m.cfg.RunDir, "locks", tenant+"_"+name+".lock"))
	if err != nil {
		return nil, err
	}
	lock.keep = func() bool {
		_, err := m.readVolume(ctx, tenant, name)
		return !errors.Is(err, ErrNotFound)
	}
	return lock, nil
}

// lockPool serializes what changes a pool's accounting: summing the sizes
// of its volumes and creating one. Taken after a volume lock, never
// before. Pool names are DNS labels, so "pool." cannot clash with a
// volume lock (tenant_name) or the allocation lock.
func (m *Manager) lockPool(ctx context.Context, pool string) (*fileLock, error) {
	return lockFile(ctx, filepath.Join(m.cfg.RunDir, "locks", "pool."+pool+".lock"))
}

// lockedRecord locks a volume and reads its record; the caller unlocks.
func (m *Manager) lockedRecord(ctx context.Context, tenant, name string) (VolumeRecord, *fileLock, error) {
	lock, err := m.lockVolume(ctx, tenant, name)
	if err != nil {
		return VolumeRecord{}, nil, err
	}
	rec, err := m.readVolume(ctx, tenant, name)
	if err != nil {
		lock.Unlock()
		return VolumeRecord{}, nil, err
	}
	return rec, lock, nil
}

func newVolumeID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("volume id: %w", err)
	}
	return "v" + hex.EncodeToString(b), nil
}

// splitKey splits "tenant/name".
func splitKey(key string) (tenant, name string) {
	tenant, name, _ = strings.Cut(key, "/")
	return tenant, name
}

// Volumes lists every volume record.
func (m *Manager) Volumes(ctx context.Context) ([]VolumeRecord, error) { return m.volumes(ctx) }

// Volume returns one volume record by tenant and name.
func (m *Manager) Volume(ctx context.Context, tenant, name string) (VolumeRecord, error) {
	if err := validKey(tenant, name); err != nil {
		return VolumeRecord{}, err
	}
	return m.readVolume(ctx, tenant, name)
}

// Attachments lists every attachment record.
func (m *Manager) Attachments() ([]Attachment, error) { return m.j.attachments() }

func validKey(tenant, name string) error {
	if err := validTenant(tenant); err != nil {
		return err
	}
	if !vocab.IsLabel(name) {
		return fmt.Errorf("invalid volume name %q: must be a DNS label", name)
	}
	return nil
}
