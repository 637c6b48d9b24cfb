package devices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// MarkNoSpace marks ENOSPC and EDQUOT with ErrNoSpace.
func MarkNoSpace(err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// Allocated is the bytes a file really takes on disk (a sparse image
// takes only what has been written).
func Allocated(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Blocks * 512, nil
}

// minReserve is the least a pool keeps free on its filesystem.
const minReserve = 64 << 20

// PoolFS is the filesystem under a pool directory of image files.
type PoolFS struct {
	// Dir is the directory measured: the pool's or, before it exists, its
	// nearest parent.
	Dir string
	// Size of the filesystem and Free: what an unprivileged writer could
	// still use (f_bavail).
	Size, Free int64
}

// StatPoolFS measures the filesystem dir is (or will be) on.
func StatPoolFS(dir string) (PoolFS, error) {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		err := unix.Statfs(d, &st)
		if err == nil {
			return PoolFS{Dir: d, Size: int64(st.Blocks) * st.Bsize, Free: int64(st.Bavail) * st.Bsize}, nil
		}
		if !errors.Is(err, unix.ENOENT) || d == "/" {
			return PoolFS{}, &os.PathError{Op: "statfs", Path: d, Err: err}
		}
	}
}

// Reserve is what a pool of image files keeps free on its filesystem (5%
// of it, at least 64 MiB): the default capacity leaves it out, and no
// volume is created or staged that could grow into it.
func (p PoolFS) Reserve() int64 { return max(p.Size/20, minReserve) }

// Check refuses when an image that may still grow by unallocated bytes
// would eat into the reserve: it needs that much free, up to the reserve.
func (p PoolFS) Check(pool string, unallocated int64) error {
	if need := min(unallocated, p.Reserve()); p.Free < need {
		return fmt.Errorf("pool %q: %w: the filesystem of %s has %s free, %s needed (free some space or lower the pool's capacity)", pool, ErrNoSpace, p.Dir, vocab.Size(p.Free), vocab.Size(need))
	}
	return nil
}
