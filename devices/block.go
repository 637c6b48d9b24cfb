package devices

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BlockDevices checks the admin's block devices.
type BlockDevices struct{}

var _ Blocks = BlockDevices{}

// NewBlocks returns the real block device checker.
func NewBlocks() BlockDevices { return BlockDevices{} }

// Stat implements Blocks.
func (BlockDevices) Stat(path string) (major, minor uint32, size int64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, 0, fmt.Errorf("%s is not a block device", path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	var n uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, 0, 0, &os.PathError{Op: "BLKGETSIZE64", Path: path, Err: e}
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev), int64(n), nil
}
