package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Open returns a JSON logger appending to path, tagged with component. When
// the file cannot be opened it logs to fallback instead and returns the
// error too, so the caller may report it once.
func Open(path, component string, fallback io.Writer) (*slog.Logger, io.Closer, error) {
	f, err := openAppend(path)
	if err != nil {
		l := slog.New(slog.NewTextHandler(fallback, nil)).With("component", component)
		return l, io.NopCloser(nil), fmt.Errorf("open log file %s: %w", path, err)
	}
	l := slog.New(slog.NewJSONHandler(f, nil)).With("component", component, "pid", os.Getpid())
	return l, f, nil
}

func openAppend(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
