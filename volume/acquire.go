package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/failpoint"
)

// Acquire stages every requested volume for owner and returns them in
// request order. Idempotent per (owner, volume): a retry returns the same
// staging. On error it undoes what this call did (claims it added,
// devices it attached, volumes it created) and leaves earlier claims alone.
func (m *Manager) Acquire(ctx context.Context, owner Owner, reqs []Request) (_ []Staged, err error) {
	defer m.observe("acquire", time.Now(), &err)
	if err := owner.validate(); err != nil {
		return nil, err
	}
	defer m.logEndLingering(ctx)
	staged := make([]Staged, 0, len(reqs))
	var added []Attachment
	var created []string
	for _, req := range reqs {
		st, att, isNew, err := m.acquireOne(ctx, owner, req)
		if err != nil {
			m.noteError(ctx, owner.Tenant, req.Name, "acquire", err)
			err = fmt.Errorf("volume %q: %w", req.Name, err)
			undo, cancel := undoContext(ctx)
			defer cancel()
			for _, a := range added {
				_, rerr := m.releaseClaim(undo, a, nil, false)
				err = errors.Join(err, rerr)
			}
			for _, name := range created {
				err = errors.Join(err, m.discardIfUnused(undo, owner.Tenant, name))
			}
			return nil, err
		}
		if att != nil {
			added = append(added, *att)
		}
		if isNew {
			created = append(created, req.Name)
		}
		staged = append(staged, st)
	}
	return staged, nil
}

// undoTimeout bounds the undo of a failed Acquire: it runs even when the
// caller's deadline has passed (so nothing stays half-staged), but it never
// hangs the caller on a lock or a device for longer than this.
const undoTimeout = 30 * time.Second

func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
}

// discardIfUnused removes a volume this failed Acquire created, unless
// anyone else ever claimed it: while this call waited for a later volume,
// another container may have staged the new one, written and stopped
// (its claim is gone, but the record says Used). Then no container ever
// ran on it and nothing is lost.
func (m *Manager) discardIfUnused(ctx context.Context, tenant, name string) error {
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if rec.Used {
		m.log.Info("volume kept: another container used it", "volume", rec.Key())
		return nil
	}
	claims, err := m.j.attachmentsOf(rec.ID)
	if err != nil || len(claims) > 0 {
		return err
	}
	return m.discardNewVolume(ctx, rec)
}

// acquireOne stages one volume. It returns the claim it added, or nil when
// the owner already held the volume (a retry), and whether it created the
// volume.
func (m *Manager) acquireOne(ctx context.Context, owner Owner, req Request) (_ Staged, _ *Attachment, created bool, _ error) {
	if err := validKey(owner.Tenant, req.Name); err != nil {
		return Staged{}, nil, false, err
	}
	// A clone's policy is its origin's pool's: createClone checks it.
	if _, _, _, err := m.plan(ctx, owner.Tenant, req, true); err != nil && req.From == "" {
		return Staged{}, nil, false, err
	}
	lock, err := m.lockVolume(ctx, owner.Tenant, req.Name)
	if err != nil {
		return Staged{}, nil, false, err
	}
	defer lock.Unlock()

	rec, created, err := m.ensureVolume(ctx, owner.Tenant, req)
	if err != nil {
		return Staged{}, nil, false, err
	}
	if !created && !rec.Used {
		// Recorded before the claim: once a container other than the
		// creating call's may write to the volume, it is never discarded.
		rec.Used = true
		if err := m.writeVolume(ctx, rec); err != nil {
			return Staged{}, nil, false, err
		}
	}
	if err := m.beforeStage(ctx, &rec, req); err != nil {
		return Staged{}, nil, false, err
	}
	staging := m.stagingDir(rec.ID)
	st := Staged{VolumeID: rec.ID, Volume: rec.Key(), Source: staging, Target: req.Target, ReadOnly: req.ReadOnly, FS: rec.FS}

	claims, err := m.j.attachmentsOf(rec.ID)
	if err != nil {
		return Staged{}, nil, false, err
	}
	mounted, blockDev, err := m.isStaged(ctx, rec)
	if err != nil {
		return Staged{}, nil, false, err
	}
	var mine *Attachment
	shared := false
	for i, c := range claims {
		if c.Owner.SameAs(owner) {
			mine = &claims[i]
		} else if c.Step == StepMounted {
			shared = true
		}
	}
	att := Attachment{
		Owner: owner, VolumeID: rec.ID, Volume: rec.Key(), Pool: rec.Pool, Staging: staging,
		Target: req.Target, ReadOnly: req.ReadOnly, Step: StepMounted, Since: time.Now().UTC(),
	}
	if mounted && (shared || (mine != nil && mine.Step == StepMounted)) {
		if mine != nil {
			// A retry: keep the original claim, refresh what the retry says.
			att.Since, att.Device, att.Backend = mine.Since, mine.Device, mine.Backend
		} else {
			att.Device, att.Backend = deviceOfClaims(claims)
		}
		if blockDev != nil {
			att.Device, att.Major, att.Minor = blockDev.Path, blockDev.Major, blockDev.Minor
		}
		if mine != nil {
			return withBlock(st, rec, att), nil, false, m.j.updateAttachment(att)
		}
		if err := m.j.writeAttachment(att); err != nil {
			return Staged{}, nil, false, err
		}
		m.log.Info("volume shared", "volume", rec.Key(), "owner", owner.Key())
		return withBlock(st, rec, att), &att, created, nil
	}
	if mounted && len(claims) == 0 {
		if reused, err := m.reuseLingering(ctx, rec, &att); err != nil {
			return Staged{}, nil, false, err
		} else if reused {
			return withBlock(st, rec, att), &att, false, nil
		}
	}
	if mounted {
		// Mounted but nobody finished staging it: a crashed Acquire. We hold
		// the lock, so nobody is using it; start over.
		if err := m.unstage(ctx, rec, "", nil); err != nil {
			return Staged{}, nil, false, err
		}
	}
	if err := m.stage(ctx, &rec, &att); err != nil {
		if created {
			err = errors.Join(err, m.discardNewVolume(ctx, rec))
		}
		return Staged{}, nil, false, err
	}
	m.log.Info("volume staged", "volume", rec.Key(), "owner", owner.Key(), "device", att.Device, "staging", staging)
	return withBlock(st, rec, att), &att, created, nil
}

// deviceOfClaims is the device (and its driver's state) the volume's
// mounted claims use.
func deviceOfClaims(claims []Attachment) (string, json.RawMessage) {
	for _, c := range claims {
		if c.Step == StepMounted && c.Device != "" {
			return c.Device, c.Backend
		}
	}
	return "", nil
}

// ensureVolume returns the volume's record, creating the volume when the
// pool creates on demand. created says this call made it. Caller holds the
// volume lock.
func (m *Manager) ensureVolume(ctx context.Context, tenant string, req Request) (VolumeRecord, bool, error) {
	if req.From != "" {
		if _, err := m.readVolume(ctx, tenant, req.Name); errors.Is(err, ErrNotFound) {
			rec, err := m.cloneOnDemand(ctx, tenant, req)
			return rec, err == nil, err
		}
	}
	rec, pool, exists, err := m.plan(ctx, tenant, req, true)
	if err != nil {
		return VolumeRecord{}, false, err
	}
	if exists {
		return rec, false, m.checkStage(ctx, rec)
	}
	rec, err = m.createVolume(ctx, tenant, req, pool)
	return rec, err == nil, err
}

// stage attaches, checks or formats, and mounts the volume at its staging
// directory. The claim is recorded durably before the first step (the
// intent: from then on Reconcile finds the volume's device by its tag and
// its staging dir by its id), and updated once staged (the completion,
// with the device). On error it undoes its own steps and drops the claim.
// Caller holds the volume lock.
func (m *Manager) stage(ctx context.Context, rec *VolumeRecord, att *Attachment) (err error) {
	att.Step = StepAttaching
	if err := m.j.writeAttachment(*att); err != nil {
		return err
	}
	mountedHere := false
	defer func() {
		if err == nil {
			return
		}
		undo, cancel := undoContext(ctx)
		defer cancel()
		if mountedHere {
			err = errors.Join(err, m.dev.Mounts.Unmount(att.Staging))
		}
		if att.Device != "" {
			err = errors.Join(err, m.detach(undo, *rec, att.Device, att.Backend))
		}
		err = errors.Join(err, removeStagingDir(att.Staging), m.j.removeAttachment(*att))
	}()

	failpoint.Hit("acquire:attaching")
	b, err := m.backendOf(*rec)
	if err != nil {
		return err
	}
	a, err := b.Attach(ctx, rec.volume())
	if err != nil {
		return err
	}
	dev := a.Device
	failpoint.Hit("acquire:attached")
	// Closing our hold on an autoclear loop device detaches it unless a
	// mount holds it: after the mount on success, or right away on error.
	defer a.Hold.Close()
	att.Device, att.Backend = dev, a.State
	if a.State != nil {
		// What undoes this backend's attach after a crash (an rbd lease, a
		// FUSE helper) is recorded, durably, before the next step. Loop
		// and block devices need no record: a loop device is found by its
		// tag.
		if err := m.j.writeAttachment(*att); err != nil {
			return err
		}
	}
	if rec.IsBlock() {
		return m.stageBlock(ctx, rec, att, a.Hold, b.FormatsOnlyZeroed())
	}
	if err := m.prepareFilesystem(ctx, rec, dev, b.FormatsOnlyZeroed()); err != nil {
		return err
	}
	failpoint.Hit("acquire:prepared")
	m.beforeMount(ctx, rec, dev)
	if err := makeStagingDir(att.Staging); err != nil {
		return err
	}
	if err := m.dev.Mounts.Mount(dev, att.Staging, rec.FS, false); err != nil {
		return fmt.Errorf("mount %s at %s: %w", dev, att.Staging, corruptIfRefused(err))
	}
	mountedHere = true
	failpoint.Hit("acquire:mounted")
	m.afterMount(ctx, rec)
	att.Step = StepMounted
	return m.j.updateAttachment(*att)
}

// prepareFilesystem formats a never-formatted, empty device, or verifies
// the filesystem we made and checks it when its superblock says it was not
// cleanly unmounted. It never formats on doubt.
func (m *Manager) prepareFilesystem(ctx context.Context, rec *VolumeRecord, dev string, onlyZeroed bool) error {
	p, err := m.probe(ctx, rec, dev)
	if err != nil {
		return fmt.Errorf("probe %s (refusing to format or mount on doubt): %w", dev, err)
	}
	switch {
	case p.Empty && !rec.Formatted && onlyZeroed && !p.Zeroed:
		return fmt.Errorf("%w: %s carries no signature blkid knows, but its first or last MiB is not zeroed; a block pool device is formatted only when blank (zero both ends once you are sure it holds nothing: blkdiscard -z, or dd)", devices.ErrNotOurs, dev)
	case p.Empty && !rec.Formatted:
		if err := m.dev.FS.Format(ctx, dev, rec.FS, rec.FSUUID); err != nil {
			return fmt.Errorf("format %s as %s: %w", dev, rec.FS, err)
		}
		rec.Formatted = true
		m.log.Info("volume formatted", "volume", rec.Key(), "fs", rec.FS, "uuid", rec.FSUUID)
		return m.writeVolume(ctx, *rec)
	case p.Empty:
		return fmt.Errorf("%w: %s was formatted by mooring but %s now has no filesystem; the data may be lost, an admin must look", ErrNotFormatted, rec.Key(), dev)
	case p.Type != rec.FS || p.UUID != rec.FSUUID:
		if !rec.Formatted {
			return fmt.Errorf("%w: %s holds %s (UUID %s); refusing to format or mount it", devices.ErrNotOurs, dev, orNothing(p.Type), p.UUID)
		}
		return fmt.Errorf("%w: %s holds %s UUID %s, the record says %s UUID %s", ErrUUIDMismatch, dev, orNothing(p.Type), p.UUID, rec.FS, rec.FSUUID)
	case !rec.Formatted:
		// mkfs finished with our UUID but we crashed before recording it.
		rec.Formatted = true
		if err := m.writeVolume(ctx, *rec); err != nil {
			return err
		}
	case p.Clean:
		return nil
	}
	m.log.Info("filesystem check", "volume", rec.Key(), "device", dev, "state", orUnknown(p.State))
	if err := m.dev.FS.Check(ctx, dev, rec.FS); errors.Is(err, devices.ErrNoTime) {
		return fmt.Errorf("%s (%s): %w", rec.Key(), orUnknown(p.State), err)
	} else if err != nil {
		return fmt.Errorf("%s: %w (mooring never reformats; repair it by hand)", rec.Key(), err)
	}
	return nil
}

// probe identifies the device. A volume we formatted is recognised by its
// superblock (type and UUID as recorded, with its clean state) without the
// full probe; anything else, and every first use, gets the full probe.
func (m *Manager) probe(ctx context.Context, rec *VolumeRecord, dev string) (devices.Probe, error) {
	if rec.Formatted {
		id, err := m.dev.FS.Identify(ctx, dev)
		if err == nil && id.Type == rec.FS && id.UUID == rec.FSUUID {
			return id, nil
		}
	}
	return m.dev.FS.Probe(ctx, dev)
}

// corruptIfRefused names the kernel's "structure needs cleaning": the
// superblock looked clean, so no check ran, but the filesystem is corrupt.
func corruptIfRefused(err error) error {
	if errors.Is(err, syscall.EUCLEAN) {
		return fmt.Errorf("%w: the kernel found it corrupt: %w (mooring never reformats; repair it by hand)", devices.ErrCorrupt, err)
	}
	return err
}

func orUnknown(state string) string {
	if state == "" {
		return "not read in-process"
	}
	return state
}

func orNothing(s string) string {
	if s == "" {
		return "a signature"
	}
	return s
}

// discardNewVolume removes a volume this Acquire created and could not
// stage: it was never used, so nothing is lost.
func (m *Manager) discardNewVolume(ctx context.Context, rec VolumeRecord) error {
	b, err := m.backendOf(rec)
	if err == nil {
		err = b.Delete(ctx, rec.volume())
	}
	return errors.Join(err, m.removeVolume(ctx, rec))
}

// detach detaches the volume's device on this node (device and state as
// the claim recorded them, or empty for whatever is attached).
func (m *Manager) detach(ctx context.Context, rec VolumeRecord, device string, state json.RawMessage) error {
	b, err := m.backendOf(rec)
	if err != nil {
		return err
	}
	return b.Detach(ctx, rec.volume(), device, state)
}

// makeStagingDir creates RunDir/mnt (0700: staged filesystems are never
// reachable by unprivileged host users) and the volume's mount point.
func makeStagingDir(staging string) error {
	parent := filepath.Dir(staging)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	if err := os.Chmod(parent, 0o700); err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	if err := os.Mkdir(staging, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("staging dir: %w", err)
	}
	return nil
}

func removeStagingDir(staging string) error {
	if err := os.Remove(staging); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove staging dir: %w", err)
	}
	return nil
}
