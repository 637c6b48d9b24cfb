package volume

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
)

// Devices are the side effects the core uses.
type Devices struct {
	Loops  devices.Loops
	FS     devices.Filesystems
	Mounts devices.Mounter
	Blocks devices.Blocks
}

// Manager runs the volume lifecycle for one host.
type Manager struct {
	cfg *config.Config
	dev Devices
	log *slog.Logger
}

// Option configures a Manager.
type Option func(*Manager)

// WithDevices replaces the real devices (unit tests use fakes).
func WithDevices(d Devices) Option { return func(m *Manager) { m.dev = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

var errTODO = errors.New("not implemented yet")

// New returns a Manager for cfg.
func New(cfg *config.Config, opts ...Option) (*Manager, error) {
	m := &Manager{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// Acquire stages every requested volume for owner and returns them in
// request order. Idempotent per (owner, volume); on error it undoes what
// this call did.
func (m *Manager) Acquire(ctx context.Context, owner Owner, reqs []Request) ([]Staged, error) {
	return nil, errTODO
}

// Release drops every claim of the owner; a volume whose last user left is
// unmounted and detached. Idempotent; never deletes data.
func (m *Manager) Release(ctx context.Context, ownerID string) error { return errTODO }

// Reconcile releases the claims of owners for which live returns false and
// removes orphan staging mounts and devices.
func (m *Manager) Reconcile(ctx context.Context, live func(Owner) bool) (ReconcileReport, error) {
	return ReconcileReport{}, errTODO
}

// Create makes a volume (admin: mooring volume create).
func (m *Manager) Create(ctx context.Context, tenant string, req Request) (VolumeRecord, error) {
	return VolumeRecord{}, errTODO
}

// Volumes lists every volume record.
func (m *Manager) Volumes() ([]VolumeRecord, error) { return nil, errTODO }

// Volume returns one volume record by tenant and name.
func (m *Manager) Volume(tenant, name string) (VolumeRecord, error) { return VolumeRecord{}, errTODO }

// Remove deletes a volume and its data; refused while attached.
func (m *Manager) Remove(ctx context.Context, tenant, name string) error { return errTODO }

// Attachments lists every attachment record.
func (m *Manager) Attachments() ([]Attachment, error) { return nil, errTODO }
