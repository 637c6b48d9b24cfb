package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/internal/atomicfile"
	"github.com/mooring-dev/mooring/internal/failpoint"
)

// A volume lingers when its pool's linger period is set: its last
// Release syncs the filesystem but leaves it staged (mounted, its device
// attached) and records the period, so an Acquire within it (a crash
// loop, a rolling restart) only adds its claim. The NRI plugin ends
// periods on a timer (EndLingering); hosts without a daemon end them at
// their next Acquire, Release or gc, and every operation that needs the
// volume detached ends its period first.

// Lingering is the journal's record of a volume kept staged with no
// claim: what its last claim said of the device (to detach it), and its
// period. It is not a claim: no owner holds it.
type Lingering struct {
	VolumeID string          `json:"volumeID"`
	Volume   string          `json:"volume"` // tenant/name
	Pool     string          `json:"pool"`
	Device   string          `json:"device,omitempty"`
	Backend  json.RawMessage `json:"backend,omitempty"`
	Since    time.Time       `json:"since"`
	Until    time.Time       `json:"until"`
}

// Lingering lists the volumes kept staged after their last release.
func (m *Manager) Lingering() ([]Lingering, error) { return m.j.lingering() }

// linger keeps a volume whose last claim cur is being released staged
// for its pool's period. It reports false (the caller unstages) when the
// pool does not linger, the volume is not staged as a filesystem (a raw
// block volume has no host mount to sync and keep), or this node lost it
// (a fenced shared volume, or a cluster it cannot reach). Caller holds
// the volume lock.
func (m *Manager) linger(ctx context.Context, rec VolumeRecord, cur Attachment) (bool, error) {
	period := m.cfg.Pools[rec.Pool].Linger
	if period <= 0 || cur.Step != StepMounted || m.lost(ctx, cur) != nil {
		return false, nil
	}
	staging := m.stagingDir(rec.ID)
	if mounted, err := m.dev.Mounts.Mounted(staging); err != nil || !mounted {
		return false, err
	}
	// Data written before the stop is durable at the release, as when
	// the volume is unmounted.
	syncFS(staging)
	failpoint.Hit("release:synced")
	now := time.Now().UTC()
	l := Lingering{
		VolumeID: rec.ID, Volume: rec.Key(), Pool: rec.Pool, Device: cur.Device, Backend: cur.Backend,
		Since: now, Until: now.Add(period),
	}
	if err := m.j.writeLingering(l); err != nil {
		return false, err
	}
	m.log.Info("volume lingers", "volume", rec.Key(), "until", l.Until)
	return true, nil
}

// reuseLingering gives att (a new claim) the staging of a lingering
// volume: the claim takes the device from the lingering record, which
// goes. It reports false when the volume does not linger, has a grow
// pending (an ext4 filesystem grows before it is mounted, without the
// privilege an online grow needs), or lingers on a device this node lost
// (a fenced shared volume); then the caller unstages and stages again.
// Caller holds the volume lock and saw the staging mounted and no claim.
func (m *Manager) reuseLingering(ctx context.Context, rec VolumeRecord, att *Attachment) (bool, error) {
	l, ok, err := m.j.readLingering(rec.ID)
	if err != nil || !ok || rec.GrowPending {
		return false, err
	}
	if err := m.lost(ctx, l.claim()); err != nil {
		m.log.Warn("lingering volume lost: staging it again", "volume", rec.Key(), "reason", err)
		return false, nil
	}
	att.Device, att.Backend = l.Device, l.Backend
	if err := m.j.writeTakeover(*att); err != nil {
		return false, err
	}
	if err := m.j.removeLingering(rec.ID); err != nil {
		// Harmless: a lingering record of a claimed volume is ignored
		// and replaced or removed when the volume is next released.
		m.log.Warn("lingering record not removed", "volume", rec.Key(), "error", err)
	}
	m.log.Info("volume reused while lingering", "volume", rec.Key(), "owner", att.Owner.Key(), "device", att.Device)
	return true, nil
}

// claim is the lingering volume seen as a claim, for the checks that
// take one.
func (l Lingering) claim() Attachment {
	return Attachment{VolumeID: l.VolumeID, Volume: l.Volume, Pool: l.Pool, Device: l.Device, Backend: l.Backend}
}

// keepsLingering reports whether an unclaimed volume whose staging is
// mounted is lingering within its period on a device this node still
// holds. Caller holds the volume lock.
func (m *Manager) keepsLingering(ctx context.Context, l Lingering, now time.Time) bool {
	return now.Before(m.lingerEnds(l)) && m.lost(ctx, l.claim()) == nil
}

// lingerEnds is when l's period ends: as recorded, or sooner when the
// pool's linger was lowered since ("0s" ends every period of the pool at
// the next pass; so does a pool removed from the config).
func (m *Manager) lingerEnds(l Lingering) time.Time {
	end := l.Since.Add(m.cfg.Pools[l.Pool].Linger)
	if end.Before(l.Until) {
		return end
	}
	return l.Until
}

// unlinger ends rec's period now if it lingers and nobody claims it,
// for operations that need the volume detached. Caller holds the volume
// lock.
func (m *Manager) unlinger(ctx context.Context, rec VolumeRecord) error {
	l, ok, err := m.j.readLingering(rec.ID)
	if err != nil || !ok {
		return err
	}
	claims, err := m.j.attachmentsOf(rec.ID)
	if err != nil || len(claims) > 0 {
		return err
	}
	m.log.Info("lingering volume unstaged", "volume", rec.Key())
	return m.unstage(ctx, rec, l.Device, l.Backend)
}

// EndLingering unstages every lingering volume whose period has passed,
// skipping volumes locked by another operation (retried in a second), and
// returns when the next period ends (zero if none lingers). The NRI
// plugin calls it on a timer; Acquire and Release call it after their
// own work, so hosts without a daemon end periods too.
func (m *Manager) EndLingering(ctx context.Context) (time.Time, error) {
	all, err := m.j.lingering()
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var errs []error
	now := time.Now()
	for _, l := range all {
		if end := m.lingerEnds(l); now.Before(end) {
			soonest(end)
			continue
		}
		switch err := m.endLingering(ctx, l); {
		case errors.Is(err, errBusy):
			soonest(now.Add(time.Second))
		case err != nil:
			errs = append(errs, fmt.Errorf("volume %s: %w", l.Volume, err))
		}
	}
	return next, errors.Join(errs...)
}

// errBusy: another operation holds the volume's lock.
var errBusy = errors.New("volume locked by another operation")

// endLingering ends one expired period under the volume's lock, which it
// does not wait for: a lingering volume another operation holds is left
// for the next pass.
func (m *Manager) endLingering(ctx context.Context, l Lingering) error {
	tenant, name := splitKey(l.Volume)
	try, cancel := context.WithCancel(ctx)
	cancel() // lockFile tries once before it looks at the context
	lock, err := m.lockVolume(try, tenant, name)
	if err != nil {
		return fmt.Errorf("%w: %w", errBusy, err)
	}
	defer lock.Unlock()
	rec, err := m.readVolume(ctx, tenant, name)
	if errors.Is(err, ErrNotFound) || (err == nil && rec.ID != l.VolumeID) {
		// Removed (volume rm unstages first): only the record is left.
		return m.j.removeLingering(l.VolumeID)
	}
	if err != nil {
		return err
	}
	claims, err := m.j.attachmentsOf(rec.ID)
	if err != nil {
		return err
	}
	if len(claims) > 0 {
		// Staged again after a reboot, or a crash between a claim and
		// the lingering record's removal: the record is moot.
		return m.j.removeLingering(l.VolumeID)
	}
	return m.unstageUnclaimed(ctx, rec, &ReconcileReport{})
}

// logEndLingering ends expired periods after an Acquire or a Release;
// their failure is not the caller's: it is logged, and gc retries.
func (m *Manager) logEndLingering(ctx context.Context) {
	if _, err := m.EndLingering(ctx); err != nil {
		m.log.Warn("lingering volumes not unstaged (mooring gc retries)", "error", err)
	}
}

// The journal's lingering records: lingering/<volume-id>.json.

func (j journal) lingeringPath(volumeID string) string {
	return filepath.Join(j.dir, "lingering", volumeID+recordSuffix)
}

// readLingering returns the volume's lingering record, if any.
func (j journal) readLingering(volumeID string) (Lingering, bool, error) {
	var l Lingering
	err := readJSON(j.lingeringPath(volumeID), &l)
	if errors.Is(err, fs.ErrNotExist) {
		return l, false, nil
	}
	if err == nil && l.VolumeID != volumeID {
		err = fmt.Errorf("lingering record of %q filed under %q", l.VolumeID, volumeID)
	}
	return l, err == nil, err
}

// writeLingering records a period. Like a claim's removal, it is durable
// only when the device has backend state (an rbd lease outlives the
// host): after a host crash nothing else lingers, and gc drops a record
// whose staging is gone.
func (j journal) writeLingering(l Lingering) error {
	if l.Backend != nil {
		return writeJSON(j.lingeringPath(l.VolumeID), l)
	}
	return replaceRecord(j.lingeringPath(l.VolumeID), l)
}

// writeTakeover records the claim that takes a lingering volume over.
// The lingering record names the device already, and goes once the claim
// is written; like it, the claim is durable only when the device has
// backend state: after a host crash a loop volume is staged nowhere, and
// gc drops whichever of the two records a crash left.
func (j journal) writeTakeover(a Attachment) error {
	if a.Backend != nil {
		return j.writeAttachment(a)
	}
	return replaceRecord(j.attachmentPath(a), a)
}

// replaceRecord writes a record atomically without the directory fsync
// (atomicfile.Replace), creating its directory.
func replaceRecord(path string, v any) error {
	b, err := encodeRecord(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Replace(path, b, 0o600)
}

// removeLingering drops the volume's lingering record (none is fine).
func (j journal) removeLingering(volumeID string) error {
	if err := os.Remove(j.lingeringPath(volumeID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lingering record: %w", err)
	}
	return nil
}

// lingering lists the valid lingering records.
func (j journal) lingering() ([]Lingering, error) {
	return readRecords(j, filepath.Join(j.dir, "lingering"), func(l *Lingering, file string) error {
		if id := strings.TrimSuffix(file, recordSuffix); l.VolumeID != id || !volumeIDPattern.Match(id) {
			return fmt.Errorf("lingering record of %q filed as %q", l.VolumeID, file)
		}
		return nil
	})
}
