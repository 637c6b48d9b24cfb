package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/atomicfile"
)

// Create makes a volume without attaching it (mooring volume create); it
// is formatted on first use.
func (m *Manager) Create(ctx context.Context, tenant string, req Request) (VolumeRecord, error) {
	if err := validKey(tenant, req.Name); err != nil {
		return VolumeRecord{}, err
	}
	if _, err := m.planCreate(tenant, req); err != nil {
		return VolumeRecord{}, err
	}
	lock, err := m.lockVolume(ctx, tenant, req.Name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	pool, err := m.planCreate(tenant, req)
	if err != nil {
		return VolumeRecord{}, err
	}
	return m.createVolume(ctx, tenant, req, pool)
}

// planCreate returns the pool of a new volume, refusing a Create the
// policy does not allow or whose volume exists.
func (m *Manager) planCreate(tenant string, req Request) (config.Pool, error) {
	_, pool, exists, err := m.plan(tenant, req, false)
	switch {
	case exists:
		return config.Pool{}, fmt.Errorf("create %s/%s: %w", tenant, req.Name, ErrExists)
	case err != nil:
		return config.Pool{}, fmt.Errorf("create %s/%s: %w", tenant, req.Name, err)
	}
	return pool, nil
}

// poolFor returns the pool a tenant asks for (empty: the default pool),
// checking the tenant may use it.
func (m *Manager) poolFor(tenant, name string) (config.Pool, error) {
	pool, err := m.cfg.Pool(name)
	if err != nil {
		return config.Pool{}, err
	}
	if !pool.Allows(tenant) {
		return config.Pool{}, fmt.Errorf("pool %q: %w %q", pool.Name, ErrNotAllowed, tenant)
	}
	return pool, nil
}

// createVolume records a new volume and makes its backing store. The
// record is written first (journal before step); on failure both go. The
// pool lock is held from the capacity and quota check to the record, so
// two creations cannot both take the last room. Caller holds the volume
// lock.
func (m *Manager) createVolume(ctx context.Context, tenant string, req Request, pool config.Pool) (VolumeRecord, error) {
	size, fsType, err := newVolumeSpec(req, pool)
	if err != nil {
		return VolumeRecord{}, fmt.Errorf("create %s/%s: %w", tenant, req.Name, err)
	}
	id, err := newVolumeID()
	if err != nil {
		return VolumeRecord{}, err
	}
	rec := VolumeRecord{
		ID: id, Tenant: tenant, Name: req.Name, Pool: pool.Name, Driver: pool.Driver,
		Size: size, FS: fsType, FSUUID: uuid.NewString(), Created: time.Now().UTC(),
	}
	lock, err := m.lockPool(ctx, pool.Name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	switch pool.Driver {
	case config.DriverLoop:
		rec.Backing = filepath.Join(m.cfg.PoolDirectory(pool.Name), id+".img")
		if err := m.checkRoom(tenant, pool, size); err != nil {
			return VolumeRecord{}, fmt.Errorf("create %s: %w", rec.Key(), err)
		}
		if err := m.j.writeVolume(rec); err != nil {
			return VolumeRecord{}, err
		}
		if err := m.createImage(pool, rec.Backing, size); err != nil {
			return VolumeRecord{}, errors.Join(fmt.Errorf("create %s: %w", rec.Key(), err), m.j.removeVolume(rec))
		}
	case config.DriverBlock:
		if err := m.pickBlockDevice(pool, &rec); err != nil {
			return VolumeRecord{}, fmt.Errorf("create %s: %w", rec.Key(), err)
		}
		if err := m.checkRoom(tenant, pool, rec.Size); err != nil {
			return VolumeRecord{}, fmt.Errorf("create %s: %w", rec.Key(), err)
		}
		if err := m.j.writeVolume(rec); err != nil {
			return VolumeRecord{}, err
		}
	default:
		return VolumeRecord{}, fmt.Errorf("create %s: pool %q has unknown driver %q", rec.Key(), pool.Name, pool.Driver)
	}
	m.log.Info("volume created", "volume", rec.Key(), "id", rec.ID, "pool", rec.Pool, "size", rec.Size, "fs", rec.FS)
	return rec, nil
}

// createImage makes a sparse image file of size bytes, 0600, atomically:
// a crash or a full disk leaves no partial image under the final name.
func (m *Manager) createImage(pool config.Pool, path string, size int64) error {
	dir := filepath.Dir(path)
	if dir == filepath.Join(m.cfg.StateDir, "pools", pool.Name) {
		// The derived default directory is ours to make; a directory the
		// admin named must already exist.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("pool %q: %w", pool.Name, err)
		}
	}
	if err := devices.CheckPoolDir(dir); err != nil {
		return fmt.Errorf("pool %q: %w", pool.Name, err)
	}
	space, err := statPoolFS(dir)
	if err != nil {
		return fmt.Errorf("pool %q: %w", pool.Name, err)
	}
	// The image is sparse, but mkfs writes into it right away and the
	// tenant after that: a pool that cannot hold it fails here.
	if err := space.check(pool.Name, size); err != nil {
		return err
	}
	tmp := path + ".partial"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool %q: %w", pool.Name, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("pool %q: create image (is the pool directory writable?): %w", pool.Name, noSpace(err))
	}
	if err := atomicfile.Commit(f, path, func(f *os.File) error { return f.Truncate(size) }); err != nil {
		return fmt.Errorf("pool %q: create image: %w", pool.Name, noSpace(err))
	}
	return nil
}

// noSpace marks ENOSPC and EDQUOT with devices.ErrNoSpace.
func noSpace(err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("%w: %w", devices.ErrNoSpace, err)
	}
	return err
}

// pickBlockDevice gives rec the first device of the pool no volume uses.
// Caller holds the pool lock (a device belongs to one pool).
func (m *Manager) pickBlockDevice(pool config.Pool, rec *VolumeRecord) error {
	all, err := m.j.volumes()
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, v := range all {
		if v.Pool == pool.Name {
			used[v.Backing] = true
		}
	}
	for _, dev := range pool.Devices {
		if used[dev] {
			continue
		}
		major, minor, size, err := m.dev.Blocks.Stat(dev)
		if err != nil {
			return fmt.Errorf("pool %q: %w", pool.Name, err)
		}
		if rec.Size > size {
			return fmt.Errorf("pool %q: %w: device %s has %d bytes, %d asked", pool.Name, ErrTooLarge, dev, size, rec.Size)
		}
		rec.Backing, rec.Major, rec.Minor, rec.Size = dev, major, minor, size
		return nil
	}
	return fmt.Errorf("pool %q: every listed device is in use", pool.Name)
}

// Remove deletes a volume and its data (loop: the image; block: only the
// record, never the admin's device). Refused while attached.
func (m *Manager) Remove(ctx context.Context, tenant, name string) error {
	if err := validKey(tenant, name); err != nil {
		return err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := m.checkDetached(ctx, rec); err != nil {
		return fmt.Errorf("remove %s: %w", rec.Key(), err)
	}
	if err := m.checkNoSnapshots(rec); err != nil {
		return fmt.Errorf("remove %s: %w", rec.Key(), err)
	}
	if rec.Driver == config.DriverLoop {
		if err := os.Remove(rec.Backing); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", rec.Key(), err)
		}
	}
	if err := m.j.removeVolume(rec); err != nil {
		return fmt.Errorf("remove %s: %w", rec.Key(), err)
	}
	m.log.Info("volume removed", "volume", rec.Key(), "id", rec.ID)
	return nil
}

// checkDetached returns ErrInUse while any claim, staging mount or tagged
// device of the volume exists.
func (m *Manager) checkDetached(ctx context.Context, rec VolumeRecord) error {
	atts, err := m.j.attachmentsOf(rec.ID)
	if err != nil {
		return err
	}
	if len(atts) > 0 {
		return fmt.Errorf("%w by container %s (mooring attachments ls)", ErrInUse, atts[0].Owner.ID)
	}
	if mounted, err := m.dev.Mounts.Mounted(m.stagingDir(rec.ID)); err != nil {
		return err
	} else if mounted {
		return fmt.Errorf("%w: staged at %s (run mooring gc)", ErrInUse, m.stagingDir(rec.ID))
	}
	if rec.Driver == config.DriverLoop {
		loops, err := m.dev.Loops.List(ctx, loopTag(rec.ID))
		if err != nil {
			return err
		}
		if len(loops) > 0 {
			return fmt.Errorf("%w: attached at %s (run mooring gc)", ErrInUse, loops[0].Path)
		}
	}
	return nil
}
