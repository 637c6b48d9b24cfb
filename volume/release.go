package volume

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/failpoint"
)

// Release drops every claim of the owner; a volume whose last user left is
// synced, unmounted and detached. Idempotent (an unknown owner is not an
// error); never deletes data.
func (m *Manager) Release(ctx context.Context, ownerID string) error {
	if !ownerIDPattern.MatchString(ownerID) {
		return fmt.Errorf("%w: id %q", ErrInvalidOwner, ownerID)
	}
	all, err := m.j.attachments()
	if err != nil {
		return fmt.Errorf("release %s: %w", ownerID, err)
	}
	var errs []error
	for _, a := range all {
		if a.Owner.ID == ownerID {
			errs = append(errs, m.releaseClaim(ctx, a))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release %s: %w", ownerID, err)
	}
	return nil
}

// releaseClaim drops one claim under the volume's lock and unstages the
// volume when no other claim remains.
func (m *Manager) releaseClaim(ctx context.Context, a Attachment) error {
	tenant, name := splitKey(a.Volume)
	lock, err := m.lockVolume(ctx, tenant, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	cur, ok, err := m.j.readAttachment(a.VolumeID, a.Owner.ID)
	if err != nil || !ok {
		return err // already released
	}
	cur.Step = StepReleasing
	if err := m.j.writeAttachment(cur); err != nil {
		return err
	}
	failpoint.Hit("release:releasing")
	claims, err := m.j.attachmentsOf(a.VolumeID)
	if err != nil {
		return err
	}
	if len(claims) == 1 {
		rec, err := m.j.readVolume(tenant, name)
		if err != nil {
			return fmt.Errorf("volume %s: %w", a.Volume, err)
		}
		if err := m.unstage(ctx, rec, cur.Device); err != nil {
			return fmt.Errorf("volume %s: %w", a.Volume, err)
		}
	}
	if err := m.j.removeAttachment(cur); err != nil {
		return err
	}
	m.log.Info("volume released", "volume", a.Volume, "owner", a.Owner.ID, "last", len(claims) == 1)
	return nil
}

// unstage syncs and unmounts the staging mount and detaches the volume's
// loop device (device, when known, else every device tagged with the
// volume id). Caller holds the volume lock.
func (m *Manager) unstage(ctx context.Context, rec VolumeRecord, device string) error {
	staging := m.stagingDir(rec.ID)
	mounted, err := m.dev.Mounts.Mounted(staging)
	if err != nil {
		return err
	}
	if mounted {
		syncFS(staging)
		if err := m.dev.Mounts.Unmount(staging); err != nil {
			return fmt.Errorf("unmount %s: %w", staging, err)
		}
	}
	if err := removeStagingDir(staging); err != nil {
		return err
	}
	if rec.Driver != config.DriverLoop {
		return nil
	}
	paths := []string{device}
	if device == "" {
		loops, err := m.dev.Loops.List(ctx, loopTag(rec.ID))
		if err != nil {
			return err
		}
		paths = paths[:0]
		for _, l := range loops {
			paths = append(paths, l.Path)
		}
	}
	var errs []error
	for _, p := range paths {
		errs = append(errs, ignoreBusy(m.dev.Loops.Detach(ctx, p, loopTag(rec.ID))))
	}
	return errors.Join(errs...)
}

// syncFS flushes the filesystem mounted at dir before it is unmounted, so
// data written before a stop is on disk even if a container's namespace
// still pins the filesystem. Best effort: unmount syncs too.
func syncFS(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Syncfs(int(f.Fd()))
}
