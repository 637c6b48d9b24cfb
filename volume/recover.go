package volume

import (
	"context"
	"errors"
	"fmt"
)

// recoverDataOps finishes or undoes the data services' operations that a
// crash interrupted, one volume at a time under its lock: a grow is
// completed (the filesystem too when the volume is staged), a clone or an
// import is discarded, a restore settles on whichever image is whole, and
// an interrupted snapshot is removed after its filesystem is thawed.
func (m *Manager) recoverDataOps(ctx context.Context, vols []VolumeRecord) []error {
	var errs []error
	for _, v := range vols {
		if err := m.recoverVolume(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Key(), err))
		}
	}
	return errs
}

func (m *Manager) recoverVolume(ctx context.Context, v VolumeRecord) error {
	rec, lock, err := m.lockedRecord(ctx, v.Tenant, v.Name)
	if errors.Is(err, ErrNotFound) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	defer lock.Unlock()
	switch rec.State {
	case StateCloning, StateImporting:
		m.log.Info("interrupted volume discarded", "volume", rec.Key(), "state", rec.State)
		if err := removeIfExists(rec.Backing + ".partial"); err != nil {
			return err
		}
		return m.discardNewVolume(ctx, rec)
	case StateRestoring:
		if err := m.finishRestore(ctx, &rec); err != nil {
			return err
		}
	}
	if err := m.completeGrow(ctx, &rec); err != nil {
		return err
	}
	snaps, err := m.j.snapshotsOf(rec.ID)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.Copying {
			if err := m.undoSnapshot(ctx, rec, s); err != nil {
				return err
			}
		}
	}
	return nil
}
