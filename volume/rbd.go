package volume

import (
	"context"
	"errors"
	"fmt"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/backends/rbd"
	"github.com/mooring-dev/mooring/config"
)

// newRBD is the driver of an rbd pool on this node.
func (m *Manager) newRBD(pool config.Pool) (backends.Backend, error) {
	c := &rbd.Cluster{
		Conf: pool.RBD.CephConf, ClientID: pool.RBD.ClientID, Pool: pool.RBD.RadosPool,
		Node: m.cfg.NodeName, Timeout: pool.RBD.Timeout,
	}
	d, err := rbd.NewDataPath(c, rbd.Map(pool.RBD.Map), m.cfg.RunDir)
	if err != nil {
		return nil, err
	}
	d.Loops = m.dev.Loops
	return &rbd.Pool{Name: pool.Name, Cluster: c, Data: d, TakeoverAfter: pool.RBD.TakeoverAfter, Log: m.log}, nil
}

// ErrNotShared: the volume's pool is not shared by several nodes.
var ErrNotShared = errors.New("pool is not shared by several nodes")

// Fence takes a volume of a shared pool over for this node from the node
// holding it, which must be dead or cut off: that node's writes fail from
// here on, and the next Acquire on this node checks (replays) the
// filesystem before mounting it. It returns what was done; the takeover is
// also recorded with the volume.
func (m *Manager) Fence(ctx context.Context, tenant, name string) (string, error) {
	if err := validKey(tenant, name); err != nil {
		return "", err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	b, err := m.backendOf(rec)
	if err != nil {
		return "", err
	}
	l, ok := b.(backends.Leased)
	if !ok {
		return "", fmt.Errorf("fence %s: %w: pool %q uses driver %q", rec.Key(), ErrNotShared, rec.Pool, rec.Driver)
	}
	what, err := l.Fence(ctx, rec.volume())
	if err != nil {
		return "", fmt.Errorf("fence %s: %w", rec.Key(), err)
	}
	m.log.Warn("volume fenced", "volume", rec.Key(), "takeover", what)
	return what, nil
}

// lost says why this node may no longer use a claimed volume of a shared
// pool (it was fenced, its helper died), or nil.
func (m *Manager) lost(ctx context.Context, a Attachment) error {
	if !m.isShared(a.Pool) {
		return nil
	}
	b, err := m.backend(a.Pool)
	if err != nil {
		return err
	}
	l, ok := b.(backends.Leased)
	if !ok {
		return nil
	}
	tenant, name := splitKey(a.Volume)
	v := backends.Volume{ID: a.VolumeID, Tenant: tenant, Name: name, Pool: a.Pool}
	return l.Lost(ctx, v, a.Backend)
}

// Lease says which node holds a volume of a shared pool and the
// takeovers it went through; ok is false for pools of one host.
func (m *Manager) Lease(ctx context.Context, rec VolumeRecord) (_ backends.LeaseStatus, ok bool, _ error) {
	b, err := m.backendOf(rec)
	if err != nil {
		return backends.LeaseStatus{}, false, err
	}
	l, ok := b.(backends.Leased)
	if !ok {
		return backends.LeaseStatus{}, false, nil
	}
	st, err := l.Lease(ctx, rec.volume())
	return st, true, err
}
