package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// ErrQuota is returned when a tenant is at its max_volumes or max_bytes
// in a pool.
var ErrQuota = errors.New("tenant quota reached")

// minReserve is the least a loop pool keeps free on its filesystem.
const minReserve = 64 << 20

// plan checks a request against the policy and says what it needs: the
// existing record, or the pool to create the volume in. It writes nothing,
// so Acquire and Create run it before they take the volume lock (a refused
// request leaves no file behind) and again under the lock to decide.
// onDemand is true for Acquire, which creates only where the pool says.
func (m *Manager) plan(tenant string, req Request, onDemand bool) (rec VolumeRecord, pool config.Pool, exists bool, err error) {
	rec, err = m.j.readVolume(tenant, req.Name)
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
	return VolumeRecord{}, pool, false, m.checkRoom(tenant, pool, size)
}

// checkExisting checks a request against the volume it names.
func (m *Manager) checkExisting(tenant string, req Request, rec VolumeRecord) error {
	if req.Pool != "" && req.Pool != rec.Pool {
		return fmt.Errorf("%s exists in pool %q, not %q", rec.Key(), rec.Pool, req.Pool)
	}
	if _, err := m.poolFor(tenant, rec.Pool); err != nil {
		return err
	}
	if req.FS != "" && req.FS != rec.FS {
		return fmt.Errorf("%s has filesystem %s, the request asks for %s", rec.Key(), rec.FS, req.FS)
	}
	return nil
}

// newVolumeSpec is the size and filesystem a new volume of pool gets.
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
func (m *Manager) checkRoom(tenant string, pool config.Pool, size int64) error {
	vols, err := m.j.volumes()
	if err != nil {
		return err
	}
	var provisioned, mine int64
	count := 0
	for _, v := range vols {
		if v.Pool != pool.Name {
			continue
		}
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
	capacity, err := m.capacity(pool)
	if err != nil {
		return err
	}
	if provisioned+size > capacity {
		return fmt.Errorf("pool %q: %w: %s of its capacity %s is provisioned, %s more asked", pool.Name, devices.ErrNoSpace, vocab.Size(provisioned), vocab.Size(capacity), vocab.Size(size))
	}
	return nil
}

// capacity is the pool's configured capacity, else the size of its
// directory's filesystem minus the reserve (loop) or the sum of the sizes
// of the listed devices that exist (block).
func (m *Manager) capacity(pool config.Pool) (int64, error) {
	if pool.Capacity > 0 {
		return pool.Capacity, nil
	}
	if pool.Driver == config.DriverBlock {
		var sum int64
		for _, d := range pool.Devices {
			if _, _, size, err := m.dev.Blocks.Stat(d); err == nil {
				sum += size
			}
		}
		return sum, nil
	}
	fs, err := statPoolFS(m.cfg.PoolDirectory(pool.Name))
	if err != nil {
		return 0, fmt.Errorf("pool %q: %w", pool.Name, err)
	}
	return max(fs.size-fs.reserve(), 0), nil
}

// checkGrowRoom refuses to stage a loop volume whose image could still
// grow into the reserve its pool keeps free: a sparse image that hits a
// full filesystem turns a container's writes into I/O errors. A fully
// allocated image needs no room.
func (m *Manager) checkGrowRoom(rec VolumeRecord) error {
	if rec.Driver != config.DriverLoop {
		return nil
	}
	used, err := allocated(rec.Backing)
	if err != nil {
		return fmt.Errorf("%s: %w", rec.Key(), err)
	}
	fs, err := statPoolFS(filepath.Dir(rec.Backing))
	if err != nil {
		return fmt.Errorf("pool %q: %w", rec.Pool, err)
	}
	return fs.check(rec.Pool, rec.Size-used)
}

// poolFS is the filesystem under a loop pool's directory.
type poolFS struct {
	dir        string // the directory measured: the pool's or, before it exists, its nearest parent
	size, free int64  // free: what an unprivileged writer could still use (f_bavail)
}

func statPoolFS(dir string) (poolFS, error) {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		err := unix.Statfs(d, &st)
		if err == nil {
			return poolFS{dir: d, size: int64(st.Blocks) * st.Bsize, free: int64(st.Bavail) * st.Bsize}, nil
		}
		if !errors.Is(err, unix.ENOENT) || d == "/" {
			return poolFS{}, &os.PathError{Op: "statfs", Path: d, Err: err}
		}
	}
}

// reserve is what a loop pool keeps free on its filesystem (5% of it, at
// least minReserve): the default capacity leaves it out, and no volume is
// created or staged that could grow into it.
func (p poolFS) reserve() int64 { return max(p.size/20, minReserve) }

// check refuses when a volume that may still grow by unallocated bytes
// would eat into the reserve: it needs that much free, up to the reserve.
func (p poolFS) check(pool string, unallocated int64) error {
	if need := min(unallocated, p.reserve()); p.free < need {
		return fmt.Errorf("pool %q: %w: the filesystem of %s has %s free, %s needed (free some space or lower the pool's capacity)", pool, devices.ErrNoSpace, p.dir, vocab.Size(p.free), vocab.Size(need))
	}
	return nil
}

// allocated is the bytes a file really takes on disk (a sparse image
// takes only what has been written).
func allocated(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Blocks * 512, nil
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
	// Free is the free space of the pool directory's filesystem (loop).
	Free int64 `json:"free,omitempty"`
}

// Pools reports every pool's usage, by pool name.
func (m *Manager) Pools() ([]PoolUsage, error) {
	vols, err := m.j.volumes()
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
		if u.Capacity, err = m.capacity(pool); err != nil {
			return nil, err
		}
		if pool.Driver == config.DriverLoop {
			if fs, err := statPoolFS(m.cfg.PoolDirectory(n)); err == nil {
				u.Free = fs.free
			}
		}
		for _, v := range vols {
			if v.Pool != n {
				continue
			}
			u.Volumes++
			u.Provisioned += v.Size
			used, _ := m.Used(v) // an image gone missing takes no space
			u.Used += used
		}
		out = append(out, u)
	}
	return out, nil
}

// Used is what a volume really takes: the allocated blocks of its image
// (loop), its whole device (block).
func (m *Manager) Used(rec VolumeRecord) (int64, error) {
	if rec.Driver != config.DriverLoop {
		return rec.Size, nil
	}
	return allocated(rec.Backing)
}
