package devices

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// edgeLen is how much of each end of a device readEdges reads: where
// partition tables (MBR, GPT and its backup), filesystem, RAID (md 0.90
// and 1.0 at the end, 1.1/1.2 at the start) and LVM signatures live.
const edgeLen = 1 << 20

// readEdges reads the first and last MiB of dev (all of it when smaller)
// with O_DIRECT, so the device answers rather than the page cache, and
// reports whether every byte read was zero. An I/O error is ErrUnreadable:
// a device whose head cannot be read may hold anything.
func readEdges(dev string) (zeroed bool, err error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, fmt.Errorf("size of %s: %w", dev, err)
	}
	// O_DIRECT needs an aligned buffer: an anonymous mapping is page aligned.
	buf, err := unix.Mmap(-1, 0, edgeLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dev, os.NewSyscallError("mmap", err))
	}
	defer unix.Munmap(buf)
	zeroed = true
	for _, off := range edgeOffsets(size) {
		n := min(int64(edgeLen), size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return false, fmt.Errorf("%w: %s at byte %d: %w", ErrUnreadable, dev, off, err)
		}
		zeroed = zeroed && allZero(buf[:n])
	}
	return zeroed, nil
}

// edgeOffsets are where the head and tail reads start (sector aligned, as
// O_DIRECT wants); the tail read starts after the head read when they
// would overlap.
func edgeOffsets(size int64) []int64 {
	if size <= edgeLen {
		return []int64{0}
	}
	return []int64{0, max(size-edgeLen, edgeLen) &^ 511}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
