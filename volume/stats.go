package volume

import (
	"context"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/devices"
)

// statsLockWait bounds how long Stats waits for a volume busy with a
// long operation (an export, a full-copy snapshot); such a volume is
// reported without its filesystem figures rather than stall a scrape.
const statsLockWait = 200 * time.Millisecond

// VolumeStats is what mooring volume stats and the metrics report for one
// volume. The filesystem figures come from statfs of the staging mount,
// computed as kubelet computes its volume stats, so they match df inside
// the container.
type VolumeStats struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	Pool   string `json:"pool"`
	FS     string `json:"fs"`
	// ProvisionedBytes is the volume's size; AllocatedBytes what its image
	// (and its snapshots' images) take on the pool's filesystem.
	ProvisionedBytes int64 `json:"provisionedBytes"`
	AllocatedBytes   int64 `json:"allocatedBytes"`
	SnapshotBytes    int64 `json:"snapshotBytes"`
	Snapshots        int   `json:"snapshots"`
	Attachments      int   `json:"attachments"`
	// Filesystem is set while the volume is staged.
	Filesystem *FilesystemStats `json:"filesystem,omitempty"`
	LastError  *LastError       `json:"lastError,omitempty"`
}

// FilesystemStats are statfs figures of a staged volume.
type FilesystemStats struct {
	CapacityBytes  int64 `json:"capacityBytes"`
	UsedBytes      int64 `json:"usedBytes"`
	AvailableBytes int64 `json:"availableBytes"`
	Inodes         int64 `json:"inodes"`
	InodesUsed     int64 `json:"inodesUsed"`
	InodesFree     int64 `json:"inodesFree"`
}

// PoolStats are one pool's totals.
type PoolStats struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// CapacityBytes and FreeBytes of the loop pool's directory filesystem
	// (for a block pool: the listed devices' total, and zero).
	CapacityBytes    int64 `json:"capacityBytes"`
	FreeBytes        int64 `json:"freeBytes"`
	ProvisionedBytes int64 `json:"provisionedBytes"`
	UsedBytes        int64 `json:"usedBytes"`
	Volumes          int   `json:"volumes"`
}

// Stats reports every volume (or only tenant/name when name is set) and
// every pool.
func (m *Manager) Stats(ctx context.Context, tenant, name string) ([]VolumeStats, []PoolStats, error) {
	vols, err := m.volumes(ctx)
	if err != nil {
		return nil, nil, err
	}
	atts, err := m.j.attachments()
	if err != nil {
		return nil, nil, err
	}
	pools := map[string]*PoolStats{}
	for _, p := range m.cfg.Pools {
		pools[p.Name] = m.poolStats(p)
	}
	var out []VolumeStats
	found := false
	for _, v := range vols {
		vs, err := m.volumeStats(ctx, v, atts)
		if err != nil {
			return nil, nil, err
		}
		if p := pools[v.Pool]; p != nil {
			p.ProvisionedBytes += vs.ProvisionedBytes
			p.UsedBytes += vs.AllocatedBytes + vs.SnapshotBytes
			p.Volumes++
		}
		if name == "" || (v.Tenant == tenant && v.Name == name) {
			out = append(out, vs)
			found = true
		}
	}
	if name != "" && !found {
		return nil, nil, fmt.Errorf("%s/%s: %w", tenant, name, ErrNotFound)
	}
	ps := make([]PoolStats, 0, len(pools))
	for _, p := range pools {
		ps = append(ps, *p)
	}
	sort.Slice(ps, func(a, b int) bool { return ps[a].Name < ps[b].Name })
	return out, ps, nil
}

func (m *Manager) volumeStats(ctx context.Context, v VolumeRecord, atts []Attachment) (VolumeStats, error) {
	vs := VolumeStats{Tenant: v.Tenant, Name: v.Name, Pool: v.Pool, FS: v.FS, ProvisionedBytes: v.Size}
	for _, a := range atts {
		if a.VolumeID == v.ID {
			vs.Attachments++
		}
	}
	if v.Driver == config.DriverLoop {
		vs.AllocatedBytes, _ = devices.Allocated(v.Backing) // a missing image takes nothing
	} else {
		vs.AllocatedBytes = v.Size
	}
	snaps, err := m.j.snapshotsOf(v.ID)
	if err != nil {
		return vs, err
	}
	vs.Snapshots = len(snaps)
	for _, s := range snaps {
		n, _ := devices.Allocated(s.Backing)
		vs.SnapshotBytes += n
	}
	if vs.LastError, err = m.lastError(v.Tenant, v.Name); err != nil {
		return vs, err
	}
	// The staging mount changes only under the volume's lock; statfs
	// without it could read the empty directory under a mount going away.
	lctx, cancel := context.WithTimeout(ctx, statsLockWait)
	defer cancel()
	lock, err := m.lockVolume(lctx, v.Tenant, v.Name)
	if err != nil {
		return vs, nil
	}
	defer lock.Unlock()
	staging := m.stagingDir(v.ID)
	if mounted, err := m.dev.Mounts.Mounted(staging); err != nil || !mounted {
		return vs, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(staging, &st); err != nil {
		return vs, fmt.Errorf("statfs %s: %w", staging, err)
	}
	bs := st.Bsize
	vs.Filesystem = &FilesystemStats{
		CapacityBytes: int64(st.Blocks) * bs, AvailableBytes: int64(st.Bavail) * bs,
		UsedBytes: int64(st.Blocks-st.Bfree) * bs,
		Inodes:    int64(st.Files), InodesFree: int64(st.Ffree), InodesUsed: int64(st.Files - st.Ffree),
	}
	return vs, nil
}

func (m *Manager) poolStats(p config.Pool) *PoolStats {
	ps := &PoolStats{Name: p.Name, Driver: p.Driver}
	if p.Driver != config.DriverLoop {
		for _, d := range p.Devices {
			if _, _, size, err := m.dev.Blocks.Stat(d); err == nil {
				ps.CapacityBytes += size
			}
		}
		return ps
	}
	var st unix.Statfs_t
	if err := unix.Statfs(m.cfg.PoolDirectory(p.Name), &st); err == nil {
		ps.CapacityBytes, ps.FreeBytes = int64(st.Blocks)*st.Bsize, int64(st.Bavail)*st.Bsize
	}
	return ps
}
