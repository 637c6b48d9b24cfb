package devices

import (
	"context"
	"errors"
)

// Filesystem types mooring can make and mount.
const (
	FSExt4  = "ext4"
	FSXFS   = "xfs"
	FSBtrfs = "btrfs"
)

// TagPrefix starts the lo_file_name tag of every loop device mooring
// attaches; the rest is the volume id.
const TagPrefix = "mooring:"

// Sentinel errors callers branch on.
var (
	// ErrCorrupt: fsck found errors it could not (or must not) fix.
	ErrCorrupt = errors.New("filesystem check failed")
	// ErrNotOurs: a device carries something mooring did not make.
	ErrNotOurs = errors.New("device holds data mooring did not make")
	// ErrBusy: an exclusive open failed because something holds the device.
	ErrBusy = errors.New("device is in use")
	// ErrUnreadable: the device cannot be read (an I/O error), so nothing
	// it holds can be judged.
	ErrUnreadable = errors.New("device cannot be read")
	// ErrNoTime: the caller's deadline is too short for a filesystem check
	// that must not be interrupted.
	ErrNoTime = errors.New("not enough time left for a filesystem check")
	// ErrNoSpace: the backing filesystem is full.
	ErrNoSpace = errors.New("no space left in pool")
)

// Loop is an attached loop device. The caller holds it open until the
// filesystem on it is mounted: devices are attached with autoclear, so the
// kernel detaches them when the last user (fd or mount) goes away, and a
// crash between attach and mount leaks nothing.
type Loop interface {
	// Path is /dev/loopN.
	Path() string
	// Close drops our hold; with autoclear and no mount the device detaches.
	Close() error
	// Persist clears autoclear: the device stays attached with no mount
	// and no open file until Detach. A raw block volume needs it: its
	// container opens the device node only while it runs.
	Persist() error
}

// Cache is how a loop device reads and writes its backing file.
type Cache int

const (
	// CacheDirect (the default) bypasses the host's page cache for the
	// backing file (LO_FLAGS_DIRECT_IO): the data is cached once, by the
	// filesystem inside the volume, and a write the volume's filesystem
	// flushed is on the host's disk.
	CacheDirect Cache = iota
	// CacheBuffered goes through the host's page cache too: pages are
	// cached twice (inside and outside), and the volume's flushes reach the
	// host's disk only when the loop driver flushes the backing file.
	CacheBuffered
)

// LoopInfo describes an attached loop device as the kernel reports it.
type LoopInfo struct {
	Path    string // /dev/loopN
	Number  int
	Backing string // backing file path as recorded by the kernel
	Tag     string // lo_file_name
	Major   uint32
	Minor   uint32
}

// Loops attaches and finds loop devices.
type Loops interface {
	// Attach backs a free loop device with the file, tagged with tag
	// (written to lo_file_name), autoclear, with direct I/O when cache is
	// CacheDirect and the backing filesystem allows it.
	Attach(ctx context.Context, backing, tag string, cache Cache) (Loop, error)
	// List returns every attached loop device whose tag starts with prefix.
	List(ctx context.Context, prefix string) ([]LoopInfo, error)
	// Detach detaches the device only if it still carries tag and nothing
	// holds it (exclusive open); otherwise ErrBusy. Detaching a device that
	// is already gone is not an error.
	Detach(ctx context.Context, path, tag string) error
}

// Probe is what a full probe found on a device.
type Probe struct {
	// Empty: no filesystem, partition table or other signature.
	Empty bool
	// Zeroed (set with Empty): the device's first and last MiB read back
	// as zeros. A block pool device is only formatted when it is: a disk
	// that held data blkid cannot name is not mooring's to overwrite.
	Zeroed bool
	// Type and UUID of the filesystem found, when not empty.
	Type string
	UUID string
	// Clean (set by Identify only): the superblock says the filesystem
	// mounts without a check (see Identify per filesystem); State says why
	// not when it is not clean.
	Clean bool
	State string
}

// Filesystems probes, formats and checks devices with the external tools
// (blkid, mkfs.*, fsck.*, xfs_repair, btrfs check), each run with an argv
// array, a timeout and its process group killed on expiry.
type Filesystems interface {
	// Probe runs a full low-level probe; any failure other than "nothing
	// found" is an error, so callers never format on doubt. "Nothing
	// found" is only believed once the device's first and last MiB were
	// read without an I/O error (blkid says "nothing" for unreadable
	// devices too); ErrUnreadable otherwise.
	Probe(ctx context.Context, dev string) (Probe, error)
	// Identify reads the type, UUID and recorded state of an ext4, xfs or
	// btrfs superblock in-process (cheap); an unrecognised device has an
	// empty Type. It never says a device is empty: only Probe does.
	Identify(ctx context.Context, dev string) (Probe, error)
	// Format makes fs on dev with the given UUID. mkfs is not stopped
	// when ctx ends (only by its own time limit): a half-made filesystem
	// would block every later attempt.
	Format(ctx context.Context, dev, fs, uuid string) error
	// Check verifies fs on dev before a read-write mount, repairing only
	// what the tool repairs safely; ErrCorrupt when errors remain. A check
	// that may write is refused with ErrNoTime before it starts when ctx's
	// deadline leaves less than it may need, and once started it is not
	// killed by ctx: a repair stopped half-way is worse than a late one.
	Check(ctx context.Context, dev, fs string) error
}

// Mounter mounts and unmounts by syscall.
type Mounter interface {
	// Mount mounts dev (fs) at target with nosuid,nodev, then makes the
	// mount private. target must exist.
	Mount(dev, target, fs string, readOnly bool) error
	// Unmount unmounts target; not mounted is not an error.
	Unmount(target string) error
	// Mounted reports whether target is a mount point, and of which device
	// (major:minor) it is.
	Mounted(target string) (bool, error)
}

// Blocks checks the admin's block devices.
type Blocks interface {
	// Stat returns the major:minor and size in bytes of a block device;
	// an error if path is not a block device.
	Stat(path string) (major, minor uint32, size int64, err error)
}
