package volume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
)

// Create makes a volume without attaching it (mooring volume create); it
// is formatted on first use.
func (m *Manager) Create(ctx context.Context, tenant string, req Request) (VolumeRecord, error) {
	if err := validKey(tenant, req.Name); err != nil {
		return VolumeRecord{}, err
	}
	if _, err := m.planCreate(ctx, tenant, req); err != nil {
		return VolumeRecord{}, err
	}
	lock, err := m.lockVolume(ctx, tenant, req.Name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	pool, err := m.planCreate(ctx, tenant, req)
	if err != nil {
		return VolumeRecord{}, err
	}
	return m.createVolume(ctx, tenant, req, pool)
}

// planCreate returns the pool of a new volume, refusing a Create the
// policy does not allow or whose volume exists.
func (m *Manager) planCreate(ctx context.Context, tenant string, req Request) (config.Pool, error) {
	_, pool, exists, err := m.plan(ctx, tenant, req, false)
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
		Size: size, FS: fsType, Created: time.Now().UTC(),
	}
	if req.IsBlock() {
		rec.Mode = annotations.ModeBlock
	} else {
		rec.FSUUID = uuid.NewString()
	}
	lock, err := m.lockPool(ctx, pool.Name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	if err := m.makeBacking(ctx, &rec, pool); err != nil {
		return VolumeRecord{}, fmt.Errorf("create %s: %w", rec.Key(), err)
	}
	m.log.Info("volume created", "volume", rec.Key(), "id", rec.ID, "pool", rec.Pool, "size", rec.Size, "fs", rec.FS)
	return rec, nil
}

// makeBacking checks the tenant's quota and the pool's capacity, has the
// pool's driver make the volume's backing store, and records the volume.
// The store is made before the record is written: a driver may choose
// (a device, and with it the size) and a shared pool keeps the record
// with the store; a crash in between leaves an unrecorded store (an image
// file, an RBD image) and never a record of nothing. Caller holds the pool
// lock.
func (m *Manager) makeBacking(ctx context.Context, rec *VolumeRecord, pool config.Pool) error {
	if err := m.checkRoom(ctx, rec.Tenant, pool, rec.Size); err != nil {
		return err
	}
	b, err := m.backend(pool.Name)
	if err != nil {
		return err
	}
	taken, err := m.backingsOf(ctx, pool.Name)
	if err != nil {
		return err
	}
	v := rec.volume()
	if err := b.Create(ctx, &v, taken); err != nil {
		return err
	}
	asked := rec.Size
	rec.Backing, rec.Major, rec.Minor, rec.Size = v.Backing, v.Major, v.Minor, v.Size
	if rec.Size != asked {
		// A device is taken whole: count what it really holds.
		err = m.checkRoom(ctx, rec.Tenant, pool, rec.Size)
	}
	if err == nil {
		err = m.writeVolume(ctx, *rec)
	}
	if err != nil {
		return errors.Join(err, b.Delete(ctx, v))
	}
	return nil
}

// backingsOf lists the backing stores of a pool's volumes.
func (m *Manager) backingsOf(ctx context.Context, pool string) ([]string, error) {
	vols, err := m.volumesOf(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(vols))
	for _, v := range vols {
		out = append(out, v.Backing)
	}
	return out, nil
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
	b, err := m.backendOf(rec)
	if err != nil {
		return err
	}
	if err := b.Delete(ctx, rec.volume()); err != nil {
		return fmt.Errorf("remove %s: %w", rec.Key(), err)
	}
	if err := m.removeVolume(ctx, rec); err != nil {
		return fmt.Errorf("remove %s: %w", rec.Key(), err)
	}
	m.log.Info("volume removed", "volume", rec.Key(), "id", rec.ID)
	return nil
}

// checkDetached returns ErrInUse while any claim, staging mount or tagged
// device of the volume exists. A lingering volume is unstaged first:
// nobody uses it.
func (m *Manager) checkDetached(ctx context.Context, rec VolumeRecord) error {
	if err := m.unlinger(ctx, rec); err != nil {
		return err
	}
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
	b, err := m.backendOf(rec)
	if err != nil {
		return err
	}
	devs, err := b.Attached(ctx, rec.volume())
	if err != nil {
		return err
	}
	if len(devs) > 0 {
		return fmt.Errorf("%w: attached at %s (run mooring gc)", ErrInUse, devs[0])
	}
	return nil
}
