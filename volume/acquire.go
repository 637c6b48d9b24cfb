package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mooring-dev/mooring/config"
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
	staged := make([]Staged, 0, len(reqs))
	var added []Attachment
	var created []string
	for _, req := range reqs {
		st, att, isNew, err := m.acquireOne(ctx, owner, req)
		if err != nil {
			m.noteError(owner.Tenant, req.Name, "acquire", err)
			err = fmt.Errorf("volume %q: %w", req.Name, err)
			undo, cancel := undoContext(ctx)
			defer cancel()
			for _, a := range added {
				_, rerr := m.releaseClaim(undo, a, nil)
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
	return m.discardNewVolume(rec)
}

// acquireOne stages one volume. It returns the claim it added, or nil when
// the owner already held the volume (a retry), and whether it created the
// volume.
func (m *Manager) acquireOne(ctx context.Context, owner Owner, req Request) (_ Staged, _ *Attachment, created bool, _ error) {
	if err := validKey(owner.Tenant, req.Name); err != nil {
		return Staged{}, nil, false, err
	}
	// A clone's policy is its origin's pool's: createClone checks it.
	if _, _, _, err := m.plan(owner.Tenant, req, true); err != nil && req.From == "" {
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
		if err := m.j.writeVolume(rec); err != nil {
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
	mounted, err := m.dev.Mounts.Mounted(staging)
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
		Owner: owner, VolumeID: rec.ID, Volume: rec.Key(), Staging: staging,
		Target: req.Target, ReadOnly: req.ReadOnly, Step: StepMounted, Since: time.Now().UTC(),
	}
	if mounted && (shared || (mine != nil && mine.Step == StepMounted)) {
		if mine != nil {
			// A retry: keep the original claim, refresh what the retry says.
			att.Since, att.Device = mine.Since, mine.Device
		} else {
			att.Device = deviceOfClaims(claims)
		}
		if err := m.j.writeAttachment(att); err != nil {
			return Staged{}, nil, false, err
		}
		if mine != nil {
			return st, nil, false, nil
		}
		m.log.Info("volume shared", "volume", rec.Key(), "owner", owner.Key())
		return st, &att, created, nil
	}
	if mounted {
		// Mounted but nobody finished staging it: a crashed Acquire. We hold
		// the lock, so nobody is using it; start over.
		if err := m.unstage(ctx, rec, ""); err != nil {
			return Staged{}, nil, false, err
		}
	}
	if err := m.stage(ctx, &rec, &att); err != nil {
		if created {
			err = errors.Join(err, m.discardNewVolume(rec))
		}
		return Staged{}, nil, false, err
	}
	m.log.Info("volume staged", "volume", rec.Key(), "owner", owner.Key(), "device", att.Device, "staging", staging)
	return st, &att, created, nil
}

func deviceOfClaims(claims []Attachment) string {
	for _, c := range claims {
		if c.Step == StepMounted && c.Device != "" {
			return c.Device
		}
	}
	return ""
}

// ensureVolume returns the volume's record, creating the volume when the
// pool creates on demand. created says this call made it. Caller holds the
// volume lock.
func (m *Manager) ensureVolume(ctx context.Context, tenant string, req Request) (VolumeRecord, bool, error) {
	if req.From != "" {
		if _, err := m.j.readVolume(tenant, req.Name); errors.Is(err, ErrNotFound) {
			rec, err := m.cloneOnDemand(ctx, tenant, req)
			return rec, err == nil, err
		}
	}
	rec, pool, exists, err := m.plan(tenant, req, true)
	if err != nil {
		return VolumeRecord{}, false, err
	}
	if exists {
		return rec, false, m.checkGrowRoom(rec)
	}
	rec, err = m.createVolume(ctx, tenant, req, pool)
	return rec, err == nil, err
}

// stage attaches, checks or formats, and mounts the volume at its staging
// directory, recording each step before taking it. On error it undoes its
// own steps and drops the claim. Caller holds the volume lock.
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
		if att.Device != "" && rec.Driver == config.DriverLoop {
			err = errors.Join(err, ignoreBusy(m.dev.Loops.Detach(undo, att.Device, loopTag(rec.ID))))
		}
		err = errors.Join(err, removeStagingDir(att.Staging), m.j.removeAttachment(*att))
	}()

	failpoint.Hit("acquire:attaching")
	dev, hold, err := m.attach(ctx, *rec)
	if err != nil {
		return err
	}
	failpoint.Hit("acquire:attached")
	// Closing our hold on an autoclear loop device detaches it unless a
	// mount holds it: after the mount on success, or right away on error.
	defer hold.Close()
	att.Device, att.Step = dev, StepMounting
	if err := m.j.writeAttachment(*att); err != nil {
		return err
	}
	if err := m.prepareFilesystem(ctx, rec, dev); err != nil {
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
	return m.j.writeAttachment(*att)
}

// attach makes the volume's block device available and returns its path
// and a hold to close once it is mounted.
func (m *Manager) attach(ctx context.Context, rec VolumeRecord) (string, io.Closer, error) {
	if rec.Driver == config.DriverBlock {
		major, minor, _, err := m.dev.Blocks.Stat(rec.Backing)
		if err != nil {
			return "", nil, err
		}
		if major != rec.Major || minor != rec.Minor {
			return "", nil, fmt.Errorf("device %s is now %d:%d but the volume was made on %d:%d; refusing", rec.Backing, major, minor, rec.Major, rec.Minor)
		}
		return rec.Backing, io.NopCloser(nil), nil
	}
	if err := m.detachLeftovers(ctx, rec); err != nil {
		return "", nil, err
	}
	lock, err := m.lockAllocation(ctx)
	if err != nil {
		return "", nil, err
	}
	defer lock.Unlock()
	loop, err := m.dev.Loops.Attach(ctx, rec.Backing, loopTag(rec.ID))
	if err != nil {
		return "", nil, fmt.Errorf("attach %s: %w", rec.Backing, err)
	}
	return loop.Path(), loop, nil
}

// detachLeftovers handles loop devices already backed by the volume's
// image before we attach it: ours from a crashed Acquire are detached (we
// hold the lock, so nobody is using them); anyone else's means the image
// is in use outside mooring, and we refuse.
func (m *Manager) detachLeftovers(ctx context.Context, rec VolumeRecord) error {
	loops, err := m.dev.Loops.List(ctx, "")
	if err != nil {
		return err
	}
	for _, l := range loops {
		switch {
		case l.Tag == loopTag(rec.ID):
			if err := m.dev.Loops.Detach(ctx, l.Path, l.Tag); err != nil {
				return fmt.Errorf("%w: leftover device %s: %w", ErrInUse, l.Path, err)
			}
		case l.Backing == rec.Backing:
			return fmt.Errorf("%w: image %s is attached at %s by something other than mooring", ErrInUse, rec.Backing, l.Path)
		}
	}
	return nil
}

// prepareFilesystem formats a never-formatted, empty device, or verifies
// the filesystem we made and checks it when its superblock says it was not
// cleanly unmounted. It never formats on doubt.
func (m *Manager) prepareFilesystem(ctx context.Context, rec *VolumeRecord, dev string) error {
	p, err := m.probe(ctx, rec, dev)
	if err != nil {
		return fmt.Errorf("probe %s (refusing to format or mount on doubt): %w", dev, err)
	}
	switch {
	case p.Empty && !rec.Formatted && rec.Driver == config.DriverBlock && !p.Zeroed:
		return fmt.Errorf("%w: %s carries no signature blkid knows, but its first or last MiB is not zeroed; a block pool device is formatted only when blank (zero both ends once you are sure it holds nothing: blkdiscard -z, or dd)", devices.ErrNotOurs, dev)
	case p.Empty && !rec.Formatted:
		if err := m.dev.FS.Format(ctx, dev, rec.FS, rec.FSUUID); err != nil {
			return fmt.Errorf("format %s as %s: %w", dev, rec.FS, err)
		}
		rec.Formatted = true
		m.log.Info("volume formatted", "volume", rec.Key(), "fs", rec.FS, "uuid", rec.FSUUID)
		return m.j.writeVolume(*rec)
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
		if err := m.j.writeVolume(*rec); err != nil {
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
func (m *Manager) discardNewVolume(rec VolumeRecord) error {
	var err error
	if rec.Driver == config.DriverLoop {
		if rerr := os.Remove(rec.Backing); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	return errors.Join(err, m.j.removeVolume(rec))
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

// ignoreBusy drops devices.ErrBusy: an autoclear device still held (by a
// container's mount namespace that has not gone yet) detaches by itself
// when its last user goes.
func ignoreBusy(err error) error {
	if errors.Is(err, devices.ErrBusy) {
		return nil
	}
	return err
}
