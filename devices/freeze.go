package devices

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int);
// golang.org/x/sys does not define them.
const (
	fiFreeze = 0xC0045877
	fiThaw   = 0xC0045878
)

type frozen struct {
	f    *os.File
	once sync.Once
	err  error
}

// Freeze implements DataOps. The directory stays open until Thaw: the
// ioctls act on the superblock of whatever filesystem the fd is on.
func (Data) Freeze(dir string) (Frozen, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("freeze: %w", err)
	}
	if _, err := retryEINTR(func() (int, error) { return 0, unix.IoctlSetInt(int(f.Fd()), fiFreeze, 0) }); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "FIFREEZE", Path: dir, Err: err}
	}
	return &frozen{f: f}, nil
}

func (z *frozen) Thaw() error {
	z.once.Do(func() {
		_, err := retryEINTR(func() (int, error) { return 0, unix.IoctlSetInt(int(z.f.Fd()), fiThaw, 0) })
		if err != nil {
			z.err = &os.PathError{Op: "FITHAW", Path: z.f.Name(), Err: err}
		}
		z.err = errors.Join(z.err, z.f.Close())
	})
	return z.err
}

// Thaw implements DataOps. EINVAL means the filesystem was not frozen.
func (Data) Thaw(dir string) error {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	defer f.Close()
	_, err = retryEINTR(func() (int, error) { return 0, unix.IoctlSetInt(int(f.Fd()), fiThaw, 0) })
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return &os.PathError{Op: "FITHAW", Path: dir, Err: err}
	}
	return nil
}
