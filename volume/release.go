package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/failpoint"
)

// Release drops every claim of the owner (matched by its key: front-end,
// scope and id); a volume whose last user left is synced, unmounted and
// detached. Idempotent (an unknown owner is not an error); never deletes
// data.
func (m *Manager) Release(ctx context.Context, owner Owner) (err error) {
	defer m.observe("release", time.Now(), &err)
	return m.eachClaim("release", owner, owner.SameAs, func(a Attachment) error {
		_, err := m.releaseClaim(ctx, a, nil)
		return err
	})
}

// ReleaseExited releases the claims of every owner with owner's front-end
// and id, in any scope, whose container is gone (OwnerAlive, asked again
// under the volume's lock). A poststop hook that cannot know the runtime
// root uses it (podman runs poststop hooks itself, not through the
// runtime): the container with that id in another root that still runs
// keeps its claims.
func (m *Manager) ReleaseExited(ctx context.Context, owner Owner) error {
	sameID := func(o Owner) bool { return o.Frontend == owner.Frontend && o.ID == owner.ID }
	return m.eachClaim("release", owner, sameID, func(a Attachment) error {
		_, err := m.releaseClaim(ctx, a, OwnerAlive)
		return err
	})
}

// claimOutcome says what releaseClaim did.
type claimOutcome int

const (
	claimGone     claimOutcome = iota // already released
	claimKept                         // keep said its owner is alive
	claimReleased                     // dropped
)

// releaseClaim drops one claim under the volume's lock and unstages the
// volume when no other claim remains. With keep, the claim as it is
// under the lock is kept when keep says so: a reconcile re-checks its
// owner's liveness there.
func (m *Manager) releaseClaim(ctx context.Context, a Attachment, keep func(Owner) bool) (claimOutcome, error) {
	tenant, name := splitKey(a.Volume)
	lock, err := m.lockVolume(ctx, tenant, name)
	if err != nil {
		return claimGone, err
	}
	defer lock.Unlock()
	cur, ok, err := m.j.findAttachment(a.VolumeID, a.Owner)
	if err != nil || !ok {
		return claimGone, err // already released
	}
	if keep != nil && keep(cur.Owner) {
		return claimKept, nil
	}
	cur.Step = StepReleasing
	if err := m.j.writeAttachment(cur); err != nil {
		return claimGone, err
	}
	failpoint.Hit("release:releasing")
	claims, err := m.j.attachmentsOf(a.VolumeID)
	if err != nil {
		return claimGone, err
	}
	if len(claims) == 1 {
		rec, err := m.j.readVolume(tenant, name)
		if err != nil {
			return claimGone, fmt.Errorf("volume %s: %w", a.Volume, err)
		}
		if err := m.unstage(ctx, rec, cur.Device); err != nil {
			return claimGone, fmt.Errorf("volume %s: %w", a.Volume, err)
		}
	}
	if err := m.j.removeAttachment(cur); err != nil {
		return claimGone, err
	}
	m.log.Info("volume released", "volume", a.Volume, "owner", a.Owner.Key(), "last", len(claims) == 1)
	return claimReleased, nil
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
