package volume

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// Sentinel errors of the data services.
var (
	ErrShrink       = errors.New("refusing to shrink a volume")
	ErrNotSupported = errors.New("not supported by the pool's driver")
	ErrNotReady     = errors.New("volume is not ready")
)

// DataState is the part of a volume record the data services keep. Each
// field is written before the step it describes, so that an interrupted
// operation is finished (or undone) by the next one, by Acquire or by gc.
type DataState struct {
	// GrowPending: Size was raised and the image (or the filesystem on it)
	// may not have caught up yet.
	GrowPending bool `json:"growPending,omitempty"`
	// State is empty when the volume is usable, else the operation that
	// is making it: StateCloning, StateImporting, StateRestoring.
	State string `json:"state,omitempty"`
	// Origin is NAME@SNAP for a clone.
	Origin string `json:"origin,omitempty"`
	// CopyMethod says how a clone or restore copied its image: "reflink"
	// or "copy".
	CopyMethod string `json:"copyMethod,omitempty"`
}

// Operations that leave a volume not ready while they run.
const (
	StateCloning   = "cloning"
	StateImporting = "importing"
	StateRestoring = "restoring"
)

// Resize grows a volume to size bytes: the image, then, when the volume is
// staged, the loop device's capacity and the filesystem, online. A
// detached volume's filesystem grows at its next Acquire. Shrinking is
// refused; asking for the current size finishes an interrupted grow.
func (m *Manager) Resize(ctx context.Context, tenant, name string, size int64) (VolumeRecord, error) {
	if err := validKey(tenant, name); err != nil {
		return VolumeRecord{}, err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return VolumeRecord{}, err
	}
	defer lock.Unlock()
	if err := m.grow(ctx, &rec, size); err != nil {
		return rec, fmt.Errorf("resize %s: %w", rec.Key(), err)
	}
	m.log.Info("volume resized", "volume", rec.Key(), "size", rec.Size, "pending", rec.GrowPending)
	return rec, nil
}

// grow raises rec to size and grows what is there to grow. Caller holds
// the volume lock.
func (m *Manager) grow(ctx context.Context, rec *VolumeRecord, size int64) error {
	if err := loopOnly(*rec, "grow"); err != nil {
		return err
	}
	if err := ready(*rec); err != nil {
		return err
	}
	switch {
	case size < rec.Size:
		return fmt.Errorf("%w from %s to %s: shrinking loses data, mooring only grows volumes", ErrShrink, vocab.Size(rec.Size), vocab.Size(size))
	case size > rec.Size:
		pool, err := m.poolFor(rec.Tenant, rec.Pool)
		if err != nil {
			return err
		}
		if err := m.checkGrowPolicy(ctx, pool, *rec, size); err != nil {
			return err
		}
		rec.Size, rec.GrowPending = size, true
		if err := m.writeVolume(ctx, *rec); err != nil {
			return err
		}
	}
	return m.completeGrow(ctx, rec)
}

// checkGrowPolicy is the capacity policy for the bytes an existing volume
// gains: within the pool's max_size, and the gain within the pool's
// capacity and the tenant's max_bytes (checkRoom, as for a new volume;
// the volume already counts in max_volumes).
func (m *Manager) checkGrowPolicy(ctx context.Context, pool config.Pool, rec VolumeRecord, size int64) error {
	if size > pool.MaxSize {
		return fmt.Errorf("%w: %s asked for %s, pool %q allows at most %s", ErrTooLarge, rec.Key(), vocab.Size(size), pool.Name, vocab.Size(pool.MaxSize))
	}
	counted := pool
	counted.MaxVolumes = 0
	return m.checkRoom(ctx, rec.Tenant, counted, size-rec.Size)
}

// checkNewPolicy is the capacity policy for a volume made from data (a
// clone, an import): what creating it would be.
func (m *Manager) checkNewPolicy(ctx context.Context, pool config.Pool, rec VolumeRecord) error {
	if rec.Size > pool.MaxSize {
		return fmt.Errorf("%w: %s is %s, pool %q allows at most %s", ErrTooLarge, rec.Key(), vocab.Size(rec.Size), pool.Name, vocab.Size(pool.MaxSize))
	}
	return m.checkRoom(ctx, rec.Tenant, pool, rec.Size)
}

// completeGrow finishes a recorded grow: the image to rec.Size and, when
// the volume is staged, the loop device's capacity and the filesystem
// through the staging mount. Every step is idempotent. Caller holds the
// volume lock.
func (m *Manager) completeGrow(ctx context.Context, rec *VolumeRecord) error {
	if !rec.GrowPending {
		return nil
	}
	if err := growImage(rec.Backing, rec.Size); err != nil {
		return err
	}
	failpoint.Hit("resize:image-grown")
	staging := m.stagingDir(rec.ID)
	mounted, err := m.dev.Mounts.Mounted(staging)
	if err != nil || !mounted {
		return err // the filesystem grows when it is next staged
	}
	devs, err := m.attachedDevices(ctx, *rec)
	if err != nil {
		return err
	}
	if len(devs) != 1 {
		return fmt.Errorf("grow: staged at %s but %d loop devices carry its tag", staging, len(devs))
	}
	dev := devs[0]
	if err := m.dev.Data.SetCapacity(dev); err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	failpoint.Hit("resize:capacity-set")
	err = m.dev.Data.GrowFS(ctx, dev, staging, rec.FS)
	if errors.Is(err, devices.ErrOnlineGrow) {
		m.log.Warn("filesystem grows at the next attach", "volume", rec.Key(), "reason", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	rec.GrowPending = false
	return m.writeVolume(ctx, *rec)
}

// growImage extends a sparse image file to size; a larger file is left
// alone.
func growImage(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("grow image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("grow image: %w", err)
	}
	if st.Size() >= size {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("grow image: %w", devices.MarkNoSpace(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("grow image: %w", err)
	}
	return nil
}

// beforeStage applies what a request asks of an existing volume before it
// is staged: it must be ready, and with grow_on_request a larger size
// grows it. Caller holds the volume lock.
func (m *Manager) beforeStage(ctx context.Context, rec *VolumeRecord, req Request) error {
	if err := ready(*rec); err != nil {
		return err
	}
	if int64(req.Size) <= rec.Size || rec.Driver != config.DriverLoop {
		return nil
	}
	pool, err := m.poolFor(rec.Tenant, rec.Pool)
	if err != nil || !pool.GrowOnRequest {
		return err
	}
	if err := m.grow(ctx, rec, int64(req.Size)); err != nil {
		return fmt.Errorf("grow on request: %w", err)
	}
	return nil
}

// beforeMount finishes a grow of an ext4 volume while it is attached and
// not yet mounted: ext4 grows offline without the privilege an online
// grow needs. afterMount finishes the others (xfs and btrfs grow only
// mounted). A failure is logged, not returned: the volume is usable at its
// old size, and the next Acquire or gc retries.
func (m *Manager) beforeMount(ctx context.Context, rec *VolumeRecord, dev string) {
	if !rec.GrowPending || rec.FS != devices.FSExt4 {
		return
	}
	err := growImage(rec.Backing, rec.Size)
	if err == nil {
		err = m.dev.Data.SetCapacity(dev)
	}
	if err == nil {
		err = m.dev.Data.GrowFS(ctx, dev, "", rec.FS)
	}
	if err == nil {
		rec.GrowPending = false
		err = m.writeVolume(ctx, *rec)
	}
	m.growFailed(ctx, rec, err)
}

func (m *Manager) afterMount(ctx context.Context, rec *VolumeRecord) {
	m.growFailed(ctx, rec, m.completeGrow(ctx, rec))
}

func (m *Manager) growFailed(ctx context.Context, rec *VolumeRecord, err error) {
	if err != nil {
		m.log.Warn("grow not finished", "volume", rec.Key(), "error", err)
		m.noteError(ctx, rec.Tenant, rec.Name, "grow", err)
	}
}

func loopOnly(rec VolumeRecord, op string) error {
	if rec.IsBlock() {
		return fmt.Errorf("%s: %w: %s is a raw block volume; mooring does not know what its container keeps on it", op, ErrNotSupported, rec.Key())
	}
	if rec.Driver != config.DriverLoop {
		return fmt.Errorf("%s: %w: pool %q uses driver %q ; %s needs a loop pool", op, ErrNotSupported, rec.Pool, rec.Driver, op)
	}
	return nil
}

func ready(rec VolumeRecord) error {
	if rec.State != "" {
		return fmt.Errorf("%w: %s is being %s (retry when that finishes; if it was interrupted, mooring gc finishes or undoes it)", ErrNotReady, rec.Key(), rec.State)
	}
	return nil
}
