package devices

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SetUUID implements DataOps and verifies the result from the superblock:
// xfs_admin reports some refusals with exit status 0.
func (t Data) SetUUID(ctx context.Context, dev, fs, uuid string) error {
	var err error
	switch fs {
	case FSExt4:
		if err = checkExt4Fully(ctx, dev); err == nil {
			_, err = runTool(ctx, checkTimeout, "tune2fs", "-U", uuid, dev)
		}
	case FSXFS:
		// A copy of a frozen xfs still has a log to replay, and xfs_admin
		// refuses to touch it until a mount has replayed it.
		if err = replayXFSLog(dev); err == nil {
			_, err = runTool(ctx, checkTimeout, "xfs_admin", "-U", uuid, dev)
		}
	case FSBtrfs:
		_, err = runTool(ctx, checkTimeout, "btrfstune", "-f", "-M", uuid, dev)
	default:
		return fmt.Errorf("set UUID on %s: unsupported filesystem %q", dev, fs)
	}
	if err != nil {
		return fmt.Errorf("set %s UUID on %s: %w", fs, dev, err)
	}
	id, err := Tools{}.Identify(ctx, dev)
	if err != nil {
		return fmt.Errorf("set %s UUID on %s: %w", fs, dev, err)
	}
	if id.Type != fs || id.UUID != uuid {
		return fmt.Errorf("set %s UUID on %s: the superblock says %s %s afterwards", fs, dev, orNone(id.Type), id.UUID)
	}
	return nil
}

// Settle implements DataOps.
func (Data) Settle(_ context.Context, dev, fs string) error {
	if fs != FSXFS {
		return nil
	}
	return replayXFSLog(dev)
}

// replayXFSLog mounts dev (nouuid: its origin may be mounted with the same
// UUID) on a private temporary directory and unmounts it.
func replayXFSLog(dev string) error {
	dir, err := os.MkdirTemp("", "mooring-xfs-replay-")
	if err != nil {
		return fmt.Errorf("replay xfs log: %w", err)
	}
	defer os.Remove(dir)
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := retry(func() error { return unix.Mount(dev, dir, FSXFS, flags, "nouuid") }); err != nil {
		return &os.PathError{Op: "mount xfs " + dev + " to replay its log", Path: dir, Err: err}
	}
	if err := retry(func() error { return unix.Unmount(dir, 0) }); err != nil {
		return errors.Join(&os.PathError{Op: "unmount", Path: dir, Err: err}, unix.Unmount(dir, unix.MNT_DETACH))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no filesystem"
	}
	return s
}
