package volume

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

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

// Stats reports every volume (or only tenant/name when name is set) and
// every pool (Pools).
func (m *Manager) Stats(ctx context.Context, tenant, name string) ([]VolumeStats, []PoolUsage, error) {
	vols, err := m.volumes(ctx)
	if err != nil {
		return nil, nil, err
	}
	atts, err := m.j.attachments()
	if err != nil {
		return nil, nil, err
	}
	var out []VolumeStats
	for _, v := range vols {
		if name != "" && (v.Tenant != tenant || v.Name != name) {
			continue
		}
		vs, err := m.volumeStats(ctx, v, atts)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, vs)
	}
	if name != "" && out == nil {
		return nil, nil, fmt.Errorf("%s/%s: %w", tenant, name, ErrNotFound)
	}
	pools, err := m.Pools(ctx)
	if err != nil {
		return nil, nil, err
	}
	return out, pools, nil
}

func (m *Manager) volumeStats(ctx context.Context, v VolumeRecord, atts []Attachment) (VolumeStats, error) {
	vs := VolumeStats{Tenant: v.Tenant, Name: v.Name, Pool: v.Pool, FS: v.FS, ProvisionedBytes: v.Size}
	for _, a := range atts {
		if a.VolumeID == v.ID {
			vs.Attachments++
		}
	}
	vs.AllocatedBytes, _ = m.Used(ctx, v) // as Pools counts it; a missing image takes nothing
	snaps, err := m.j.snapshotsOf(v.ID)
	if err != nil {
		return vs, err
	}
	vs.Snapshots = len(snaps)
	if vs.SnapshotBytes, err = m.snapshotBytes(v); err != nil {
		return vs, err
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

// snapshotBytes is what the volume's snapshot images take.
func (m *Manager) snapshotBytes(v VolumeRecord) (int64, error) {
	snaps, err := m.j.snapshotsOf(v.ID)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range snaps {
		a, _ := devices.Allocated(s.Backing) // a missing image takes nothing
		n += a
	}
	return n, nil
}
