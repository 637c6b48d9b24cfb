package devices

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyChunk bounds one copy_file_range call, so that a cancelled context
// (a freeze that ran out of time) stops a long copy promptly.
const copyChunk = 64 << 20

// CopyImage implements DataOps.
func (Data) CopyImage(ctx context.Context, dst, src *os.File) (CopyMethod, error) {
	err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	if err == nil {
		return CopyReflink, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return "", &os.PathError{Op: "FICLONE", Path: dst.Name(), Err: err}
	}
	if err := SparseCopy(ctx, dst, src); err != nil {
		return "", err
	}
	return CopySparse, nil
}

// SparseCopy copies the data extents of src to the same offsets of dst and
// gives dst src's size: holes are never written, so a sparse image stays
// sparse.
func SparseCopy(ctx context.Context, dst, src *os.File) error {
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	size := st.Size()
	if err := dst.Truncate(size); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	return Extents(src, size, func(off, n int64) error {
		for n > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			c, err := copyRange(dst, src, off, min(n, copyChunk))
			if err != nil {
				return fmt.Errorf("copy %s: %w", src.Name(), err)
			}
			off, n = off+c, n-c
		}
		return nil
	})
}

// copyRange copies up to n bytes at off with copy_file_range, falling back
// to read and write where the kernel cannot (different filesystems).
func copyRange(dst, src *os.File, off, n int64) (int64, error) {
	roff, woff := off, off
	c, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(n), 0)
	switch {
	case err == nil && c > 0:
		return int64(c), nil
	case err == nil:
		return 0, io.ErrUnexpectedEOF // the source shrank under us
	case errors.Is(err, unix.EINTR):
		return 0, nil
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		w, err := io.Copy(io.NewOffsetWriter(dst, off), io.NewSectionReader(src, off, n))
		if err == nil && w < n {
			err = io.ErrUnexpectedEOF
		}
		return w, err
	}
	return 0, os.NewSyscallError("copy_file_range", err)
}

// Extents calls fn for each data extent of f below size, in order, as
// SEEK_DATA and SEEK_HOLE report them (a filesystem without them reports
// the whole file as data).
func Extents(f *os.File, size int64, fn func(off, n int64) error) error {
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return &os.PathError{Op: "SEEK_DATA", Path: f.Name(), Err: err}
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return &os.PathError{Op: "SEEK_HOLE", Path: f.Name(), Err: err}
		}
		hole = min(hole, size)
		if data >= hole {
			return nil
		}
		if err := fn(data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}
