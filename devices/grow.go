package devices

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// growTimeout bounds one filesystem grow; resize2fs of a large ext4
// initialises new block groups and takes a while.
const growTimeout = 5 * time.Minute

// SetCapacity implements DataOps.
func (Data) SetCapacity(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set capacity: %w", err)
	}
	defer f.Close()
	if _, err := retryEINTR(func() (int, error) { return 0, unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0) }); err != nil {
		return &os.PathError{Op: "LOOP_SET_CAPACITY", Path: dev, Err: err}
	}
	return nil
}

// ErrOnlineGrow: the kernel refused to grow a mounted filesystem (ext4
// needs CAP_SYS_RESOURCE for it, which some hosts withhold).
var ErrOnlineGrow = errors.New("online grow not permitted on this host")

// GrowFS implements DataOps. Each filesystem grows online through a
// different handle: resize2fs takes the device (and finds the mount),
// xfs_growfs and btrfs take the mount point. Only ext4 grows unmounted
// (mountpoint ""), after a forced check that resize2fs insists on.
func (Data) GrowFS(ctx context.Context, dev, mountpoint, fs string) error {
	var err error
	switch {
	case fs == FSExt4 && mountpoint == "":
		if err = checkExt4Fully(ctx, dev); err == nil {
			_, err = runTool(ctx, growTimeout, "resize2fs", dev)
		}
	case mountpoint == "":
		return fmt.Errorf("grow %s: %s grows only while mounted", dev, fs)
	case fs == FSExt4:
		_, err = runTool(ctx, growTimeout, "resize2fs", dev)
		var te *ToolError
		if errors.As(err, &te) && strings.Contains(te.Stderr, "Permission denied") {
			err = fmt.Errorf("%w: %w", ErrOnlineGrow, err)
		}
	case fs == FSXFS:
		_, err = runTool(ctx, growTimeout, "xfs_growfs", mountpoint)
	case fs == FSBtrfs:
		_, err = runTool(ctx, growTimeout, "btrfs", "filesystem", "resize", "max", mountpoint)
	default:
		return fmt.Errorf("grow %s: unsupported filesystem %q", dev, fs)
	}
	if err != nil {
		return fmt.Errorf("grow %s filesystem on %s: %w", fs, dev, err)
	}
	return nil
}

// checkExt4Fully runs a forced e2fsck -p: resize2fs and tune2fs -U refuse
// an ext4 that was mounted since its last full check.
func checkExt4Fully(ctx context.Context, dev string) error {
	_, err := runTool(ctx, checkTimeout, "e2fsck", "-f", "-p", dev)
	if code := exitCode(err); code == 1 || code == 2 {
		return nil // errors fixed by the safe "preen" repairs
	}
	return err
}
