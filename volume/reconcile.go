package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Reconcile releases the claims of owners for which live returns false
// (asked again under the volume's lock before anything is released, so
// an owner that came alive meanwhile keeps its claim), then unstages volumes nobody claims: staging mounts left mounted and
// loop devices tagged with their id. A device is detached only after an
// exclusive open proves nothing holds it. Devices tagged by mooring whose
// volume is not in this journal are left alone: another state directory
// may own them.
func (m *Manager) Reconcile(ctx context.Context, live func(Owner) bool) (_ ReconcileReport, err error) {
	defer m.observe("gc", time.Now(), &err)
	var rep ReconcileReport
	claims, err := m.j.attachments()
	if err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}
	var errs []error
	for _, a := range claims {
		keep, lost := live, ""
		if live(a.Owner) {
			lerr := m.lost(ctx, a)
			if lerr == nil {
				rep.Kept++
				continue
			}
			// This node was fenced or its helper died: the container's
			// writes fail already; tear down what this node holds.
			m.log.Warn("volume lost: releasing a live owner's claim", "volume", a.Volume, "owner", a.Owner.Key(), "reason", lerr)
			keep, lost = nil, lerr.Error()
		}
		outcome, err := m.releaseClaim(ctx, a, keep, false)
		switch {
		case err != nil:
			errs = append(errs, err)
		case outcome == claimReleased && lost != "":
			rep.Lost = append(rep.Lost, LostClaim{Attachment: a, Reason: lost})
		case outcome == claimReleased:
			rep.Released = append(rep.Released, a)
		case outcome == claimKept:
			rep.Kept++
		}
	}
	vols, err := m.volumesHere(ctx)
	if err != nil {
		// Reconcile what could be read; say what could not.
		errs = append(errs, err)
	}
	for _, v := range vols {
		if err := m.reconcileVolume(ctx, v, &rep); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Key(), err))
		}
	}
	errs = append(errs, m.recoverDataOps(ctx, vols)...)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}
	return rep, nil
}

// reconcileVolume unstages one volume if nobody claims it.
func (m *Manager) reconcileVolume(ctx context.Context, v VolumeRecord, rep *ReconcileReport) error {
	lock, err := m.lockVolume(ctx, v.Tenant, v.Name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	return m.unstageUnclaimed(ctx, v, rep)
}

// unstageUnclaimed unstages a volume nobody claims, unless it lingers
// within its period. Caller holds the volume lock.
func (m *Manager) unstageUnclaimed(ctx context.Context, v VolumeRecord, rep *ReconcileReport) error {
	claims, err := m.j.attachmentsOf(v.ID)
	if err != nil || len(claims) > 0 {
		return err
	}
	l, lingers, err := m.j.readLingering(v.ID)
	if err != nil {
		return err
	}
	staging := m.stagingDir(v.ID)
	mounted, err := m.dev.Mounts.Mounted(staging)
	if err != nil {
		return err
	}
	if mounted && lingers && m.keepsLingering(ctx, l, time.Now()) {
		return nil
	}
	if mounted {
		rep.Unmounted = append(rep.Unmounted, staging)
	}
	loops, err := m.attachedDevices(ctx, v)
	if err != nil {
		return err
	}
	if !mounted && len(loops) == 0 && l.Backend == nil {
		// A lingering record left by a host crash names nothing that is
		// still there.
		return errors.Join(removeStagingDir(staging), m.j.removeLingering(v.ID))
	}
	if err := m.unstage(ctx, v, l.Device, l.Backend); err != nil {
		return err
	}
	after, err := m.attachedDevices(ctx, v)
	if err != nil {
		return err
	}
	for _, p := range loops {
		if !slices.Contains(after, p) {
			rep.Detached = append(rep.Detached, p)
		}
	}
	m.log.Info("orphan unstaged", "volume", v.Key(), "unmounted", mounted, "detached", loops, "lingered", lingers)
	return nil
}

// attachedDevices lists the devices this node has attached for rec.
func (m *Manager) attachedDevices(ctx context.Context, rec VolumeRecord) ([]string, error) {
	b, err := m.backendOf(rec)
	if err != nil {
		return nil, err
	}
	return b.Attached(ctx, rec.volume())
}
