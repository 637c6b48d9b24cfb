package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/atomicfile"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// maxFreeze bounds how long a snapshot keeps an attached volume's
// filesystem frozen: writers in the container block meanwhile. A reflink
// takes milliseconds; a full copy of a large volume may not fit, and then
// the snapshot fails (and the filesystem is thawed) rather than stall the
// application.
var maxFreeze = 30 * time.Second

// SnapshotRecord is the journal's record of one snapshot: a read-only copy
// of a volume's image, in the same pool directory.
type SnapshotRecord struct {
	Name     string    `json:"name"`
	Volume   string    `json:"volume"` // tenant/name of the origin
	VolumeID string    `json:"volumeID"`
	Backing  string    `json:"backing"`
	Size     int64     `json:"size"`
	FS       string    `json:"fs"`
	FSUUID   string    `json:"fsUUID"`
	Method   string    `json:"method,omitempty"` // reflink or copy
	Frozen   bool      `json:"frozen,omitempty"` // taken from an attached volume, frozen
	Copying  bool      `json:"copying,omitempty"`
	Created  time.Time `json:"created"`
}

// Ref is the snapshot's name as written in requests: NAME@SNAP.
func (s SnapshotRecord) Ref() string {
	_, name := splitKey(s.Volume)
	return name + "@" + s.Name
}

func (j journal) snapshotDir(volumeID string) string {
	return filepath.Join(j.dir, "snapshots", volumeID)
}

func (j journal) snapshotPath(volumeID, snap string) string {
	return filepath.Join(j.snapshotDir(volumeID), snap+recordSuffix)
}

func (j journal) readSnapshot(rec VolumeRecord, snap string) (SnapshotRecord, error) {
	var s SnapshotRecord
	err := readJSON(j.snapshotPath(rec.ID, snap), &s)
	if errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("snapshot %s@%s: %w", rec.Key(), snap, ErrNotFound)
	}
	return s, err
}

func (j journal) snapshotsOf(volumeID string) ([]SnapshotRecord, error) {
	out, err := readRecords(j, j.snapshotDir(volumeID), func(s *SnapshotRecord, file string) error {
		if s.VolumeID != volumeID || s.Name+recordSuffix != file {
			return fmt.Errorf("snapshot %q of volume %q filed under %q", s.Name, s.VolumeID, volumeID)
		}
		return nil
	})
	sort.Slice(out, func(a, b int) bool { return out[a].Created.Before(out[b].Created) })
	return out, err
}

func (j journal) removeSnapshot(s SnapshotRecord) error {
	if err := removeFile(j.snapshotPath(s.VolumeID, s.Name)); err != nil {
		return err
	}
	if err := os.Remove(j.snapshotDir(s.VolumeID)); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("remove snapshot dir: %w", err)
	}
	return nil
}

// snapshotImage is where a snapshot's image lives: beside the volume's, so
// that a reflink can share its extents.
func snapshotImage(rec VolumeRecord, snap string) string {
	return filepath.Join(filepath.Dir(rec.Backing), rec.ID+"@"+snap+".img")
}

// Snapshot takes a snapshot of a volume. An attached volume's filesystem
// is frozen (FIFREEZE on its staging mount) for the copy and thawed on
// every path, within maxFreeze, so the snapshot is crash-consistent.
// Idempotent: an existing snapshot of that name is returned as it is.
func (m *Manager) Snapshot(ctx context.Context, tenant, name, snap string) (SnapshotRecord, error) {
	if err := validKey(tenant, name); err != nil {
		return SnapshotRecord{}, err
	}
	if err := validSnapshotName(snap); err != nil {
		return SnapshotRecord{}, err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return SnapshotRecord{}, err
	}
	defer lock.Unlock()
	s, err := m.snapshotLocked(ctx, rec, snap)
	if err != nil {
		return SnapshotRecord{}, fmt.Errorf("snapshot %s@%s: %w", rec.Key(), snap, err)
	}
	return s, nil
}

func (m *Manager) snapshotLocked(ctx context.Context, rec VolumeRecord, snap string) (SnapshotRecord, error) {
	if err := loopOnly(rec, "snapshot"); err != nil {
		return SnapshotRecord{}, err
	}
	if err := ready(rec); err != nil {
		return SnapshotRecord{}, err
	}
	if s, err := m.j.readSnapshot(rec, snap); err == nil && !s.Copying {
		return s, nil
	} else if err == nil {
		// An interrupted snapshot: we hold the lock, so it is dead.
		if err := m.undoSnapshot(ctx, rec, s); err != nil {
			return SnapshotRecord{}, err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return SnapshotRecord{}, err
	}
	staging := m.stagingDir(rec.ID)
	mounted, err := m.dev.Mounts.Mounted(staging)
	if err != nil {
		return SnapshotRecord{}, err
	}
	s := SnapshotRecord{
		Name: snap, Volume: rec.Key(), VolumeID: rec.ID, Backing: snapshotImage(rec, snap),
		Size: rec.Size, FS: rec.FS, FSUUID: rec.FSUUID, Frozen: mounted, Copying: true, Created: time.Now().UTC(),
	}
	if err := m.j.writeSnapshot(s); err != nil {
		return SnapshotRecord{}, err
	}
	freeze := ""
	if mounted {
		freeze = staging
	}
	method, err := m.copyImage(ctx, rec.Backing, s.Backing, freeze)
	if err != nil {
		return SnapshotRecord{}, errors.Join(err, m.j.removeSnapshot(s))
	}
	failpoint.Hit("snapshot:copied")
	if mounted {
		err := m.onImage(ctx, rec, s.Backing, func(dev string) error { return m.dev.Data.Settle(ctx, dev, s.FS) })
		if err != nil {
			return SnapshotRecord{}, errors.Join(fmt.Errorf("settle the copy: %w", err), m.undoSnapshot(ctx, rec, s))
		}
	}
	s.Method, s.Copying = string(method), false
	if err := m.j.writeSnapshot(s); err != nil {
		return SnapshotRecord{}, err
	}
	m.log.Info("snapshot taken", "volume", rec.Key(), "snapshot", snap, "method", method, "frozen", mounted)
	return s, nil
}

func (j journal) writeSnapshot(s SnapshotRecord) error {
	return writeJSON(j.snapshotPath(s.VolumeID, s.Name), s)
}

// frozen runs copy with the filesystem at staging frozen. The thaw is
// deferred (every error path, a panic) and also fires after maxFreeze,
// which cancels the copy: a snapshot that took longer is refused.
func (m *Manager) frozen(ctx context.Context, staging string, copy func(context.Context) error) (err error) {
	syncFS(staging) // most dirty data goes out before writers are blocked
	z, err := m.dev.Data.Freeze(staging)
	if err != nil {
		return fmt.Errorf("freeze %s: %w", staging, err)
	}
	failpoint.Hit("snapshot:frozen")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var expired atomic.Bool
	timer := time.AfterFunc(maxFreeze, func() {
		expired.Store(true)
		cancel()
		_ = z.Thaw()
	})
	defer func() {
		timer.Stop()
		err = errors.Join(err, z.Thaw())
	}()
	err = copy(ctx)
	if expired.Load() {
		return fmt.Errorf("the copy did not finish within %s of freezing the filesystem, so it was thawed and the snapshot abandoned (a pool directory on xfs or btrfs makes snapshots instant)", maxFreeze)
	}
	return err
}

// copyImage copies the image src to a new file dst (through dst.partial,
// renamed when complete and synced), with the filesystem mounted at
// freeze (when not empty) frozen during the copy. The source is opened
// first, so that a snapshot removed meanwhile still reads whole.
func (m *Manager) copyImage(ctx context.Context, src, dst, freeze string) (devices.CopyMethod, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("copy image: %w", err)
	}
	defer in.Close()
	tmp := dst + ".partial"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("copy image: %w", err)
	}
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("copy image: %w", devices.MarkNoSpace(err))
	}
	var method devices.CopyMethod
	err = atomicfile.Commit(out, dst, func(f *os.File) error {
		copy := func(ctx context.Context) error {
			var err error
			method, err = m.dev.Data.CopyImage(ctx, f, in)
			return devices.MarkNoSpace(err)
		}
		if freeze == "" {
			return copy(ctx)
		}
		return m.frozen(ctx, freeze, copy)
	})
	if err != nil {
		return "", fmt.Errorf("copy image: %w", err)
	}
	return method, nil
}

// undoSnapshot removes what an interrupted snapshot left: a frozen
// staging mount is thawed, the partial image and the record go. Caller
// holds the volume lock.
func (m *Manager) undoSnapshot(ctx context.Context, rec VolumeRecord, s SnapshotRecord) error {
	var errs []error
	staging := m.stagingDir(rec.ID)
	if s.Frozen {
		if mounted, err := m.dev.Mounts.Mounted(staging); err != nil {
			errs = append(errs, err)
		} else if mounted {
			errs = append(errs, m.dev.Data.Thaw(staging))
		}
	}
	errs = append(errs, removeIfExists(s.Backing+".partial"), removeIfExists(s.Backing))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("undo interrupted snapshot %s: %w", s.Ref(), err)
	}
	m.log.Info("interrupted snapshot removed", "volume", rec.Key(), "snapshot", s.Name)
	return m.j.removeSnapshot(s)
}

// Snapshots lists a volume's snapshots, oldest first.
func (m *Manager) Snapshots(ctx context.Context, tenant, name string) ([]SnapshotRecord, error) {
	rec, err := m.Volume(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	return m.j.snapshotsOf(rec.ID)
}

// RemoveSnapshot deletes a snapshot and its image. Clones made from it
// keep their own copy.
func (m *Manager) RemoveSnapshot(ctx context.Context, tenant, name, snap string) error {
	if err := validKey(tenant, name); err != nil {
		return err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	s, err := m.j.readSnapshot(rec, snap)
	if err != nil {
		return err
	}
	if s.Copying {
		return m.undoSnapshot(ctx, rec, s)
	}
	if err := removeIfExists(s.Backing); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", s.Ref(), err)
	}
	if err := m.j.removeSnapshot(s); err != nil {
		return err
	}
	m.log.Info("snapshot removed", "volume", rec.Key(), "snapshot", snap)
	return nil
}

// checkNoSnapshots refuses to remove a volume that still has snapshots:
// removing it would orphan their images.
func (m *Manager) checkNoSnapshots(rec VolumeRecord) error {
	snaps, err := m.j.snapshotsOf(rec.ID)
	if err != nil {
		return err
	}
	if len(snaps) > 0 {
		return fmt.Errorf("%w: it has %d snapshot(s), first %s (mooring volume snapshot rm)", ErrInUse, len(snaps), snaps[0].Ref())
	}
	return nil
}

func validSnapshotName(snap string) error {
	if !vocab.IsLabel(snap) {
		return fmt.Errorf("invalid snapshot name %q: must be a DNS label", snap)
	}
	return nil
}
