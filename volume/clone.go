package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// Clone creates the volume req.Name of tenant as a copy of the snapshot
// req.From (NAME@SNAP) of another volume of the same tenant, in the same
// pool, with a new filesystem UUID so it can be mounted beside its origin.
// req.Size may ask for more than the snapshot's size: the clone grows when
// it is first staged.
func (m *Manager) Clone(ctx context.Context, tenant string, req Request) (VolumeRecord, error) {
	if err := validKey(tenant, req.Name); err != nil {
		return VolumeRecord{}, err
	}
	lock, err := m.lockVolume(ctx, tenant, req.Name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	if _, err := m.readVolume(ctx, tenant, req.Name); err == nil {
		return VolumeRecord{}, fmt.Errorf("clone %s/%s: %w", tenant, req.Name, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return VolumeRecord{}, err
	}
	return m.createClone(ctx, tenant, req, false)
}

// cloneOnDemand creates a missing volume that a request asks for "from" a
// snapshot, when the origin's pool creates volumes on demand. Caller holds
// the new volume's lock.
func (m *Manager) cloneOnDemand(ctx context.Context, tenant string, req Request) (VolumeRecord, error) {
	return m.createClone(ctx, tenant, req, true)
}

// createClone copies the snapshot into a new image, gives its filesystem
// a new UUID and records the volume. The record is written first, marked
// StateCloning until the image is complete; on failure both go. It reads
// the origin's records without the origin's lock: a snapshot is never
// changed, and its image is opened before copying, so a concurrent
// snapshot rm cannot tear the copy. Caller holds the new volume's lock.
func (m *Manager) createClone(ctx context.Context, tenant string, req Request, onDemand bool) (VolumeRecord, error) {
	fail := func(err error) (VolumeRecord, error) {
		return VolumeRecord{}, fmt.Errorf("clone %s/%s from %s: %w", tenant, req.Name, req.From, err)
	}
	originName, snapName, err := annotations.SplitSnapshot(req.From)
	if err != nil {
		return fail(err)
	}
	if originName == req.Name {
		return fail(errors.New("a volume cannot be cloned from its own snapshot"))
	}
	origin, err := m.readVolume(ctx, tenant, originName)
	if err != nil {
		return fail(err)
	}
	if err := loopOnly(origin, "clone"); err != nil {
		return fail(err)
	}
	snap, err := m.j.readSnapshot(origin, snapName)
	if err != nil {
		return fail(err)
	}
	if snap.Copying {
		return fail(fmt.Errorf("%w: the snapshot is still being taken", ErrNotReady))
	}
	pool, err := m.poolFor(tenant, origin.Pool)
	if err != nil {
		return fail(err)
	}
	switch {
	case onDemand && !pool.CreateOnDemand:
		return fail(fmt.Errorf("pool %q %w (clone it with mooring volume clone)", pool.Name, ErrNoCreate))
	case req.Pool != "" && req.Pool != origin.Pool:
		return fail(fmt.Errorf("a clone lives in its origin's pool %q, not %q", origin.Pool, req.Pool))
	case req.FS != "" && req.FS != snap.FS:
		return fail(fmt.Errorf("the snapshot holds %s, the request asks for %s", snap.FS, req.FS))
	case req.Size != 0 && int64(req.Size) < snap.Size:
		return fail(fmt.Errorf("%w to %s: the snapshot is %s", ErrShrink, vocab.Size(req.Size), vocab.Size(snap.Size)))
	}
	id, err := newVolumeID()
	if err != nil {
		return fail(err)
	}
	rec := VolumeRecord{
		ID: id, Tenant: tenant, Name: req.Name, Pool: origin.Pool, Driver: origin.Driver,
		Backing: filepath.Join(filepath.Dir(origin.Backing), id+".img"), Size: max(snap.Size, int64(req.Size)),
		FS: snap.FS, FSUUID: uuid.NewString(), Formatted: true, Created: time.Now().UTC(),
		DataState: DataState{State: StateCloning, Origin: req.From, GrowPending: int64(req.Size) > snap.Size},
	}
	if err := m.checkNewPolicy(ctx, pool, rec); err != nil {
		return fail(err)
	}
	if err := m.writeVolume(ctx, rec); err != nil {
		return fail(err)
	}
	if err := m.fillClone(ctx, &rec, snap); err != nil {
		return fail(errors.Join(err, m.discardNewVolume(ctx, rec), removeIfExists(rec.Backing+".partial")))
	}
	m.log.Info("volume cloned", "volume", rec.Key(), "from", req.From, "method", rec.CopyMethod)
	return rec, nil
}

// fillClone copies the snapshot to the clone's image and changes its
// filesystem UUID on a loop device tagged with the clone's id (gc detaches
// it if we die), then marks the clone ready.
func (m *Manager) fillClone(ctx context.Context, rec *VolumeRecord, snap SnapshotRecord) error {
	method, err := m.copyImage(ctx, snap.Backing, rec.Backing, "")
	if err != nil {
		return err
	}
	failpoint.Hit("clone:copied")
	err = m.onImage(ctx, *rec, rec.Backing, func(dev string) error {
		return m.dev.Data.SetUUID(ctx, dev, rec.FS, rec.FSUUID)
	})
	if err != nil {
		return err
	}
	if rec.GrowPending {
		if err := growImage(rec.Backing, rec.Size); err != nil {
			return err
		}
	}
	rec.State, rec.CopyMethod = "", string(method)
	return m.writeVolume(ctx, *rec)
}

// onImage runs fn on the device of rec's backend over image (rec's own,
// or a snapshot of it), attached for rec's id (gc detaches it if we die)
// and detached afterwards. Caller holds rec's lock.
func (m *Manager) onImage(ctx context.Context, rec VolumeRecord, image string, fn func(dev string) error) error {
	b, err := m.backendOf(rec)
	if err != nil {
		return err
	}
	v := rec.volume()
	v.Backing = image
	a, err := b.Attach(ctx, v)
	if err != nil {
		return err
	}
	err = fn(a.Device)
	// Closing the hold detaches an autoclear device.
	return errors.Join(err, a.Hold.Close(), b.Detach(ctx, v, a.Device, a.State))
}

// Restore replaces a detached volume's data with a snapshot of it. The
// snapshot is copied beside the image and renamed over it, so a crash
// leaves the old or the new image whole.
func (m *Manager) Restore(ctx context.Context, tenant, name, snap string) (VolumeRecord, error) {
	if err := validKey(tenant, name); err != nil {
		return VolumeRecord{}, err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	fail := func(err error) (VolumeRecord, error) {
		return VolumeRecord{}, fmt.Errorf("restore %s@%s: %w", rec.Key(), snap, err)
	}
	if err := loopOnly(rec, "restore"); err != nil {
		return fail(err)
	}
	if err := ready(rec); err != nil {
		return fail(err)
	}
	if err := m.checkDetached(ctx, rec); err != nil {
		return fail(fmt.Errorf("%w; stop the containers using it first", err))
	}
	s, err := m.j.readSnapshot(rec, snap)
	if err != nil {
		return fail(err)
	}
	if s.Copying {
		return fail(fmt.Errorf("%w: the snapshot is still being taken", ErrNotReady))
	}
	rec.State = StateRestoring
	if err := m.writeVolume(ctx, rec); err != nil {
		return fail(err)
	}
	method, err := m.copyImage(ctx, s.Backing, rec.Backing, "")
	if err != nil {
		return fail(errors.Join(err, m.finishRestore(ctx, &rec)))
	}
	failpoint.Hit("restore:copied")
	rec.CopyMethod = string(method)
	if err := m.finishRestore(ctx, &rec); err != nil {
		return fail(err)
	}
	m.log.Info("volume restored", "volume", rec.Key(), "snapshot", snap, "method", method)
	return rec, nil
}

// finishRestore marks a restore done (or undone): the image on disk is
// the old or the new one, whole, and the record takes its size.
func (m *Manager) finishRestore(ctx context.Context, rec *VolumeRecord) error {
	if err := removeIfExists(rec.Backing + ".partial"); err != nil {
		return err
	}
	st, err := os.Stat(rec.Backing)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	rec.Size, rec.GrowPending, rec.State = st.Size(), false, ""
	return m.writeVolume(ctx, *rec)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
