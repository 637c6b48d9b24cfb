package volume

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/backends/block"
	"github.com/mooring-dev/mooring/backends/loop"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
)

// backend returns the driver of a pool, made the first time the pool is
// used by this manager.
func (m *Manager) backend(name string) (backends.Backend, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.backends[name]; ok {
		return b, nil
	}
	pool, err := m.cfg.Pool(name)
	if err != nil {
		return nil, err
	}
	b, err := m.newBackend(pool)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", name, err)
	}
	if m.backends == nil {
		m.backends = map[string]backends.Backend{}
	}
	m.backends[name] = b
	return b, nil
}

// newBackend picks the pool's driver: the one place the core looks at it.
func (m *Manager) newBackend(pool config.Pool) (backends.Backend, error) {
	switch pool.Driver {
	case config.DriverLoop:
		dir := m.cfg.PoolDirectory(pool.Name)
		return &loop.Pool{
			Name: pool.Name, Dir: dir, Loops: m.dev.Loops,
			MakeDir:        dir == filepath.Join(m.cfg.StateDir, "pools", pool.Name),
			LockAllocation: m.lockAllocation,
			Preallocate:    pool.Preallocate,
			Cache:          loopCache(pool.Cache),
		}, nil
	case config.DriverBlock:
		return &block.Pool{Name: pool.Name, Devices: pool.Devices, Blocks: m.dev.Blocks}, nil
	case config.DriverRBD:
		return m.newRBD(pool)
	}
	return nil, fmt.Errorf("unknown driver %q", pool.Driver)
}

// backendOf returns the driver of rec's pool.
func (m *Manager) backendOf(rec VolumeRecord) (backends.Backend, error) {
	return m.backend(rec.Pool)
}

// lockAllocation serializes loop-device allocation on the host; it is
// held only around that step. It is the host's only global lock: its
// wait and hold times, logged at unlock, show how parallel starts
// contend (docs/BENCHMARKS.md, Scale).
func (m *Manager) lockAllocation(ctx context.Context) (func(), error) {
	asked := time.Now()
	lock, err := lockFile(ctx, filepath.Join(m.cfg.RunDir, "locks", "allocation.lock"))
	if err != nil {
		return nil, err
	}
	locked := time.Now()
	return func() {
		lock.Unlock()
		m.log.Info("allocation lock released", "waitMs", ms(locked.Sub(asked)), "heldMs", ms(time.Since(locked)))
	}, nil
}

// ms is d in milliseconds, for log fields.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// volume is what rec's backend knows of it.
func (rec VolumeRecord) volume() backends.Volume {
	return backends.Volume{
		ID: rec.ID, Tenant: rec.Tenant, Name: rec.Name, Pool: rec.Pool,
		Backing: rec.Backing, Major: rec.Major, Minor: rec.Minor, Size: rec.Size,
	}
}

// loopCache is a loop pool's cache setting for its devices.
func loopCache(c string) devices.Cache {
	if c == config.CacheBuffered {
		return devices.CacheBuffered
	}
	return devices.CacheDirect
}

// CheckPool says whether this node can use a pool whose driver can tell
// (a shared pool: the cluster answers, the data path is installed); ok is
// false for drivers with nothing to check.
func (m *Manager) CheckPool(ctx context.Context, name string) (detail string, ok bool, err error) {
	b, err := m.backend(name)
	if err != nil {
		return "", true, err
	}
	c, ok := b.(backends.Checker)
	if !ok {
		return "", false, nil
	}
	detail, err = c.Check(ctx)
	return detail, true, err
}
