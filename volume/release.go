package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/failpoint"
)

// Release drops every claim of the owner (matched by its key: front-end,
// scope and id); a volume whose last user left is synced, unmounted and
// detached. Idempotent (an unknown owner is not an error); never deletes
// data.
func (m *Manager) Release(ctx context.Context, owner Owner) (err error) {
	defer m.observe("release", time.Now(), &err)
	defer m.logEndLingering(ctx)
	return m.eachClaim("release", owner, owner.SameAs, func(a Attachment) error {
		_, err := m.releaseClaim(ctx, a, nil, true)
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
	defer m.logEndLingering(ctx)
	return m.eachClaim("release", owner, sameID, func(a Attachment) error {
		_, err := m.releaseClaim(ctx, a, OwnerAlive, true)
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
// volume when no other claim remains, or, with linger, lets it linger
// when its pool says so (a container's own stop; not a reconcile of dead
// owners nor an undo). With keep, the claim as it is under the lock is
// kept when keep says so: a reconcile re-checks its owner's liveness
// there.
func (m *Manager) releaseClaim(ctx context.Context, a Attachment, keep func(Owner) bool, linger bool) (claimOutcome, error) {
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
	failpoint.Hit("release:releasing")
	claims, err := m.j.attachmentsOf(a.VolumeID)
	if err != nil {
		return claimGone, err
	}
	if len(claims) == 1 {
		rec, err := m.recordOfClaim(ctx, cur)
		if err != nil {
			return claimGone, fmt.Errorf("volume %s: %w", a.Volume, err)
		}
		if err := m.lastRelease(ctx, rec, cur, linger); err != nil {
			return claimGone, fmt.Errorf("volume %s: %w", a.Volume, err)
		}
	}
	if err := m.j.removeAttachment(cur); err != nil {
		return claimGone, err
	}
	m.log.Info("volume released", "volume", a.Volume, "owner", a.Owner.Key(), "last", len(claims) == 1)
	return claimReleased, nil
}

// lastRelease lingers (see linger) or unstages a volume whose last claim
// cur goes. Caller holds the volume lock.
func (m *Manager) lastRelease(ctx context.Context, rec VolumeRecord, cur Attachment, linger bool) error {
	if linger {
		if lingers, err := m.linger(ctx, rec, cur); lingers || err != nil {
			return err
		}
	}
	return m.unstage(ctx, rec, cur.Device, cur.Backend)
}

// unstage syncs and unmounts the staging mount and detaches the volume's
// device (device and state as the claim recorded them, or empty: whatever
// this node has attached for the volume); a lingering record goes with
// it. Caller holds the volume lock.
func (m *Manager) unstage(ctx context.Context, rec VolumeRecord, device string, state json.RawMessage) error {
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
	if err := m.detach(ctx, rec, device, state); err != nil {
		return err
	}
	return m.j.removeLingering(rec.ID)
}

// recordOfClaim reads the record of a claimed volume. A shared pool's
// record lives in the cluster: when the cluster cannot be read (this node
// is cut off or fenced), the claim itself says enough to tear down what
// this node holds, without touching the cluster.
func (m *Manager) recordOfClaim(ctx context.Context, a Attachment) (VolumeRecord, error) {
	tenant, name := splitKey(a.Volume)
	rec, err := m.readVolume(ctx, tenant, name)
	if err == nil || !m.isShared(a.Pool) {
		return rec, err
	}
	m.log.Warn("shared record unreadable: tearing down from the claim", "volume", a.Volume, "error", err)
	return m.claimRecord(a), nil
}

// claimRecord is what a claim says of its volume: enough to detach it.
func (m *Manager) claimRecord(a Attachment) VolumeRecord {
	tenant, name := splitKey(a.Volume)
	return VolumeRecord{ID: a.VolumeID, Tenant: tenant, Name: name, Pool: a.Pool, Driver: m.cfg.Pools[a.Pool].Driver}
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
