package devices

import (
	"context"
	"os"
)

// CopyMethod says how an image was copied.
type CopyMethod string

const (
	// CopyReflink shares the source's extents (FICLONE): instant, and no
	// space is used until either copy is written to.
	CopyReflink CopyMethod = "reflink"
	// CopySparse copies the data extents only (SEEK_DATA/SEEK_HOLE and
	// copy_file_range); holes stay holes.
	CopySparse CopyMethod = "copy"
)

// DataOps are the side effects of growing, snapshotting and cloning
// volumes.
type DataOps interface {
	// SetCapacity makes an attached loop device pick up its backing file's
	// new size (LOOP_SET_CAPACITY).
	SetCapacity(dev string) error
	// GrowFS grows the filesystem fs on dev, mounted at mountpoint (or
	// unmounted: mountpoint "", ext4 only), to fill the device (resize2fs,
	// xfs_growfs, btrfs filesystem resize max). Growing a filesystem that
	// already fills its device is not an error.
	GrowFS(ctx context.Context, dev, mountpoint, fs string) error
	// Freeze freezes the filesystem mounted at dir (FIFREEZE) so that a
	// copy of its device is crash-consistent. The caller must Thaw.
	Freeze(dir string) (Frozen, error)
	// Thaw thaws the filesystem mounted at dir if it is frozen: recovery
	// for a process that died between freeze and thaw.
	Thaw(dir string) error
	// CopyImage copies src into the empty file dst, by reflink where the
	// filesystem can, else sparse-aware; dst ends with src's size.
	CopyImage(ctx context.Context, dst, src *os.File) (CopyMethod, error)
	// Settle makes a copy of a frozen filesystem clean on its own: xfs
	// leaves its log to replay, which a mount does (the others need
	// nothing).
	Settle(ctx context.Context, dev, fs string) error
	// SetUUID gives the unmounted filesystem fs on dev a new UUID, so that
	// a clone can be mounted beside its origin.
	SetUUID(ctx context.Context, dev, fs, uuid string) error
}

// Frozen is a frozen filesystem.
type Frozen interface {
	// Thaw thaws it (FITHAW). Safe to call more than once and from another
	// goroutine: only the first call thaws.
	Thaw() error
}

// Data is the real DataOps.
type Data struct{}

var _ DataOps = Data{}

// NewDataOps returns the real data operations.
func NewDataOps() Data { return Data{} }
