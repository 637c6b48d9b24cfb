package devices

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Mounts mounts by syscall.
type Mounts struct{}

var _ Mounter = Mounts{}

// NewMounter returns the real mounter.
func NewMounter() Mounts { return Mounts{} }

// Mount implements Mounter: nosuid,nodev (and ro when asked), then private
// propagation so nothing mounted below the staging dir leaks anywhere.
func (Mounts) Mount(dev, target, fs string, readOnly bool) error {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := retryBusy(func() error { return unix.Mount(dev, target, fs, flags, "") }); err != nil {
		return &os.PathError{Op: "mount " + fs + " " + dev, Path: target, Err: err}
	}
	if err := retry(func() error { return unix.Mount("", target, "", unix.MS_PRIVATE, "") }); err != nil {
		return errors.Join(&os.PathError{Op: "make private", Path: target, Err: err}, unix.Unmount(target, 0))
	}
	return nil
}

// Unmount implements Mounter; a target that is not mounted (or gone) is not
// an error.
func (m Mounts) Unmount(target string) error {
	err := retry(func() error { return unix.Unmount(target, unix.UMOUNT_NOFOLLOW) })
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.EINVAL) {
		if mounted, merr := m.Mounted(target); merr == nil && !mounted {
			return nil
		}
	}
	return &os.PathError{Op: "unmount", Path: target, Err: err}
}

// Mounted implements Mounter.
func (Mounts) Mounted(target string) (bool, error) {
	ok, err := mountinfo.Mounted(target)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is %s mounted: %w", target, err)
	}
	return ok, nil
}

func retry(fn func() error) error {
	_, err := retryEINTR(func() (int, error) { return 0, fn() })
	return err
}

// busyTries and busyWait bound how long a mount waits out EBUSY: the
// kernel refuses to mount a device someone holds open exclusively, and on
// a busy host that is often a passing check (another volume's detach
// making sure a device it is about to clear is not in use, a blkid).
const (
	busyTries = 10
	busyWait  = 50 * time.Millisecond
)

// retryBusy is retry that also waits out a passing EBUSY.
func retryBusy(fn func() error) error {
	var err error
	for range busyTries {
		if err = retry(fn); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(busyWait)
	}
	return err
}
