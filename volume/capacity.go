package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// ErrQuota is returned when a tenant is at its max_volumes or max_bytes
// in a pool.
var ErrQuota = errors.New("tenant quota reached")

// plan checks a request against the policy and says what it needs: the
// existing record, or the pool to create the volume in. It writes nothing,
// so Acquire and Create run it before they take the volume lock (a refused
// request leaves no file behind) and again under the lock to decide.
// onDemand is true for Acquire, which creates only where the pool says.
func (m *Manager) plan(ctx context.Context, tenant string, req Request, onDemand bool) (rec VolumeRecord, pool config.Pool, exists bool, err error) {
	rec, err = m.readVolume(ctx, tenant, req.Name)
	if err == nil {
		return rec, config.Pool{}, true, m.checkExisting(tenant, req, rec)
	}
	if !errors.Is(err, ErrNotFound) {
		return VolumeRecord{}, config.Pool{}, false, err
	}
	if pool, err = m.poolFor(tenant, req.Pool); err != nil {
		return VolumeRecord{}, config.Pool{}, false, err
	}
	if onDemand && !pool.CreateOnDemand {
		return VolumeRecord{}, config.Pool{}, false, fmt.Errorf("%w: %s/%s does not exist and pool %q %w (create it with mooring volume create)", ErrNotFound, tenant, req.Name, pool.Name, ErrNoCreate)
	}
	size, _, err := newVolumeSpec(req, pool)
	if err != nil {
		return VolumeRecord{}, config.Pool{}, false, err
	}
	return VolumeRecord{}, pool, false, m.checkRoom(ctx, tenant, pool, size)
}

// checkExisting checks a request against the volume it names.
func (m *Manager) checkExisting(tenant string, req Request, rec VolumeRecord) error {
	if req.Pool != "" && req.Pool != rec.Pool {
		return fmt.Errorf("%s exists in pool %q, not %q", rec.Key(), rec.Pool, req.Pool)
	}
	if _, err := m.poolFor(tenant, rec.Pool); err != nil {
		return err
	}
	if err := checkMode(rec, req); err != nil {
		return err
	}
	if req.FS != "" && req.FS != rec.FS {
		return fmt.Errorf("%s has filesystem %s, the request asks for %s", rec.Key(), rec.FS, req.FS)
	}
	return nil
}

// checkMode refuses a request for a volume in the other mode: a volume is
// a raw block device or a filesystem for life (a filesystem handed out
// raw could be overwritten, a raw device mounted could hold anything).
func checkMode(rec VolumeRecord, req Request) error {
	if rec.IsBlock() == req.IsBlock() {
		return nil
	}
	if rec.IsBlock() {
		return fmt.Errorf("%s is a raw block volume (mode block), the request asks for a filesystem; ask with mode: block", rec.Key())
	}
	return fmt.Errorf("%s is a filesystem volume, the request asks for mode block; a volume keeps the mode it was created with", rec.Key())
}

// newVolumeSpec is the size and filesystem a new volume of pool gets (no
// filesystem for a raw block volume).
func newVolumeSpec(req Request, pool config.Pool) (int64, string, error) {
	size := int64(req.Size)
	if size == 0 {
		size = pool.DefaultSize
	}
	if size <= 0 {
		return 0, "", fmt.Errorf("size must be positive")
	}
	if size > pool.MaxSize {
		return 0, "", fmt.Errorf("%w: %s asked, pool %q allows at most %s", ErrTooLarge, vocab.Size(size), pool.Name, vocab.Size(pool.MaxSize))
	}
	if req.IsBlock() {
		return size, "", nil // no filesystem: the tenant manages the device
	}
	fs := req.FS
	if fs == "" {
		fs = pool.DefaultFS
	}
	if !slices.Contains(pool.Filesystems, fs) {
		return 0, "", fmt.Errorf("fs %s: pool %q allows only %s", fs, pool.Name, strings.Join(pool.Filesystems, ", "))
	}
	return size, fs, nil
}

// checkRoom refuses a new volume of size bytes when it would take tenant
// over its limits in the pool or the pool over its capacity. Without the
// pool lock it is a pre-check; createVolume repeats it under the lock.
func (m *Manager) checkRoom(ctx context.Context, tenant string, pool config.Pool, size int64) error {
	vols, err := m.volumesOf(ctx, pool.Name)
	if err != nil {
		return err
	}
	var provisioned, mine int64
	count := 0
	for _, v := range vols {
		provisioned += v.Size
		if v.Tenant == tenant {
			count++
			mine += v.Size
		}
	}
	if pool.MaxVolumes > 0 && count >= pool.MaxVolumes {
		return fmt.Errorf("pool %q: %w: tenant %q has %d volumes there, max_volumes is %d", pool.Name, ErrQuota, tenant, count, pool.MaxVolumes)
	}
	if pool.MaxBytes > 0 && mine+size > pool.MaxBytes {
		return fmt.Errorf("pool %q: %w: tenant %q holds %s there, %s more would pass max_bytes %s", pool.Name, ErrQuota, tenant, vocab.Size(mine), vocab.Size(size), vocab.Size(pool.MaxBytes))
	}
	capacity, err := m.capacity(ctx, pool)
	if err != nil {
		return err
	}
	if provisioned+size > capacity {
		return fmt.Errorf("pool %q: %w: %s of its capacity %s is provisioned, %s more asked", pool.Name, devices.ErrNoSpace, vocab.Size(provisioned), vocab.Size(capacity), vocab.Size(size))
	}
	return nil
}

// capacity is the pool's configured capacity, else what its driver says
// it can hold: the size of the directory's filesystem minus its reserve
// (loop), the sum of the sizes of the listed devices that exist (block).
func (m *Manager) capacity(ctx context.Context, pool config.Pool) (int64, error) {
	if pool.Capacity > 0 {
		return pool.Capacity, nil
	}
	b, err := m.backend(pool.Name)
	if err != nil {
		return 0, err
	}
	return b.Capacity(ctx)
}

// checkStage refuses to stage a volume whose store could run out of room
// under the container's writes (a sparse image growing into its pool's
// reserve turns writes into I/O errors).
func (m *Manager) checkStage(ctx context.Context, rec VolumeRecord) error {
	b, err := m.backendOf(rec)
	if err != nil {
		return err
	}
	if err := b.CheckStage(ctx, rec.volume()); err != nil {
		return fmt.Errorf("%s: %w", rec.Key(), err)
	}
	return nil
}

// PoolUsage is what a pool holds against what it may hold.
type PoolUsage struct {
	Pool    string `json:"pool"`
	Driver  string `json:"driver"`
	Volumes int    `json:"volumes"`
	// Provisioned is the sum of the volumes' sizes, checked against
	// Capacity when a volume is created.
	Provisioned int64 `json:"provisioned"`
	Capacity    int64 `json:"capacity"`
	// Used is what the volumes really take: allocated blocks of the images
	// (loop), the whole devices (block).
	Used int64 `json:"used"`
	// Snapshots is what the volumes' snapshot images take.
	Snapshots int64 `json:"snapshots,omitempty"`
	// Free is the free space of the pool directory's filesystem (loop).
	Free int64 `json:"free,omitempty"`
}

// Pools reports every pool's usage, by pool name: the one source of pool
// figures (mooring pools ls, volume stats, the metrics).
func (m *Manager) Pools(ctx context.Context) ([]PoolUsage, error) {
	vols, err := m.volumes(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m.cfg.Pools))
	for n := range m.cfg.Pools {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]PoolUsage, 0, len(names))
	for _, n := range names {
		pool := m.cfg.Pools[n]
		u := PoolUsage{Pool: n, Driver: pool.Driver}
		if u.Capacity, err = m.capacity(ctx, pool); err != nil {
			return nil, err
		}
		if b, err := m.backend(n); err == nil {
			if f, ok := b.(interface{ Free() (int64, error) }); ok {
				u.Free, _ = f.Free()
			}
		}
		for _, v := range vols {
			if v.Pool != n {
				continue
			}
			u.Volumes++
			u.Provisioned += v.Size
			used, _ := m.Used(ctx, v) // an image gone missing takes no space
			u.Used += used
			snaps, err := m.snapshotBytes(v)
			if err != nil {
				return nil, err
			}
			u.Snapshots += snaps
		}
		out = append(out, u)
	}
	return out, nil
}

// Used is what a volume really takes: the allocated blocks of its image
// (loop), its whole device (block).
func (m *Manager) Used(ctx context.Context, rec VolumeRecord) (int64, error) {
	b, err := m.backendOf(rec)
	if err != nil {
		return 0, err
	}
	return b.Used(ctx, rec.volume())
}
