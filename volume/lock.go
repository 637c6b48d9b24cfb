package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// lockPollInterval is how often a waiter retries a held lock.
const lockPollInterval = 2 * time.Millisecond

// fileLock is an exclusive flock on a lock file. flock locks belong to the
// open file description, so two goroutines of one process exclude each
// other just like two processes do, and a crashed holder's lock vanishes
// with it. A holder may remove the file (remove); lockFile then checks,
// after locking, that it locked the file the path names now, so removal
// never lets two holders in.
type fileLock struct {
	f    *os.File
	path string
	// keep, when set, says at Unlock whether the file may stay; volume
	// locks of volumes that do not exist go, so refused requests leave
	// nothing behind.
	keep func() bool
}

// lockFile takes an exclusive lock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flock(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		current, err := isCurrent(f, path)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if current {
			return &fileLock{f: f, path: path}, nil
		}
		// The previous holder removed the file while we waited: our lock
		// is on a file nobody else will open again.
		f.Close()
	}
}

func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("held by another operation: %w", ctx.Err())
		case <-time.After(lockPollInterval):
		}
	}
}

// isCurrent reports whether path still names the open file f.
func isCurrent(f *os.File, path string) (bool, error) {
	var held, named unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return false, err
	}
	err := unix.Lstat(path, &named)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return held.Dev == named.Dev && held.Ino == named.Ino, nil
}

// Unlock releases the lock, first removing the file when keep says so.
// Only a holder removes it: a waiter that locked the removed file sees
// that and retries on the path's new file.
func (l *fileLock) Unlock() {
	if l.keep != nil && !l.keep() {
		_ = os.Remove(l.path)
	}
	l.f.Close()
}
