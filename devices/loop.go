package devices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LoopDevices attaches loop devices with LOOP_CTL_GET_FREE + LOOP_CONFIGURE.
type LoopDevices struct {
	// SysBlock is /sys/block (tests may point it elsewhere).
	SysBlock string
}

var _ Loops = (*LoopDevices)(nil)

// maxAttachTries bounds the retries when another process takes the free
// device between LOOP_CTL_GET_FREE and LOOP_CONFIGURE.
const maxAttachTries = 64

// NewLoops returns the real loop devices.
func NewLoops() *LoopDevices { return &LoopDevices{SysBlock: "/sys/block"} }

type loopDevice struct {
	path string
	f    *os.File
}

func (l *loopDevice) Path() string { return l.path }
func (l *loopDevice) Close() error { return l.f.Close() }

// Persist implements Loop. LOOP_SET_STATUS64 writes back every field it
// is given, so the status is read first: only the flag changes (the
// kernel lets autoclear be cleared this way, nothing else of the flags).
func (l *loopDevice) Persist() error {
	st, err := unix.IoctlLoopGetStatus64(int(l.f.Fd()))
	if err != nil {
		return fmt.Errorf("persist %s: LOOP_GET_STATUS64: %w", l.path, err)
	}
	st.Flags &^= unix.LO_FLAGS_AUTOCLEAR
	_, err = retryEINTR(func() (int, error) { return 0, unix.IoctlLoopSetStatus64(int(l.f.Fd()), st) })
	if err != nil {
		return fmt.Errorf("persist %s: LOOP_SET_STATUS64: %w", l.path, err)
	}
	return nil
}

// Attach implements Loops. A failed LOOP_CONFIGURE leaves the device
// unbound, so it is never followed by LOOP_CLR_FD: that could detach a
// device another process bound in the meantime.
func (d *LoopDevices) Attach(ctx context.Context, backing, tag string, cache Cache) (Loop, error) {
	if len(tag) >= unix.LO_NAME_SIZE {
		return nil, fmt.Errorf("loop tag %q: longer than %d bytes", tag, unix.LO_NAME_SIZE-1)
	}
	if err := CheckPoolDir(filepath.Dir(backing)); err != nil {
		return nil, err
	}
	file, err := os.OpenFile(backing, os.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open backing file: %w", err)
	}
	defer file.Close()
	if err := checkPrivate(file, backing, false); err != nil {
		return nil, err
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop support: %w", err)
	}
	defer ctl.Close()

	for range maxAttachTries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := retryEINTR(func() (int, error) { return unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE) })
		if err != nil {
			return nil, os.NewSyscallError("LOOP_CTL_GET_FREE", err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		dev, err := openLoopNode(path, n)
		if err != nil {
			return nil, err
		}
		err = configure(dev, file, tag, cache == CacheDirect)
		if cache == CacheDirect && errors.Is(err, unix.EINVAL) {
			// The backing filesystem cannot do direct I/O (or the kernel
			// refuses it for this file): buffered I/O still works.
			err = configure(dev, file, tag, false)
		}
		if errors.Is(err, unix.EBUSY) {
			dev.Close()
			continue // someone else took it; ask for another
		}
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("LOOP_CONFIGURE %s: %w", path, err)
		}
		return &loopDevice{path: path, f: dev}, nil
	}
	return nil, fmt.Errorf("attach %s: no free loop device after %d tries", backing, maxAttachTries)
}

// CheckPoolDir refuses a pool directory another user could change: one
// not owned by the user mooring runs as (root) or writable by group or
// others, who could swap a tenant's image for a file of their own.
func CheckPoolDir(dir string) error {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pool directory: %w", err)
	}
	defer f.Close()
	return checkPrivate(f, dir, true)
}

// checkPrivate checks the open file f (path, for the message) is ours
// alone: owned by our user, not group- or other-writable, and a regular
// file or, with dir, a directory. It looks at the open file, so what it
// checks is what gets attached.
func checkPrivate(f *os.File, path string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	kind, want, wantName := "backing file", uint32(unix.S_IFREG), "regular file"
	if dir {
		kind, want, wantName = "pool directory", unix.S_IFDIR, "directory"
	}
	uid := uint32(os.Geteuid())
	switch {
	case st.Mode&unix.S_IFMT != want:
		return fmt.Errorf("%s %s: not a %s; refusing to attach it", kind, path, wantName)
	case st.Uid != uid:
		return fmt.Errorf("%s %s: owned by uid %d, not by uid %d that mooring runs as; chown %d %s", kind, path, st.Uid, uid, uid, path)
	case st.Mode&0o022 != 0 && !(!dir && onPrivateFUSE(f)):
		return fmt.Errorf("%s %s: writable by group or others (mode %04o); chmod go-w %s", kind, path, st.Mode&0o7777, path)
	}
	return nil
}

// onPrivateFUSE reports whether f lies on a FUSE filesystem. Only the user
// that mounted one reaches it (mooring never mounts with allow_other, and
// the owner check above proves that user is us), so the mode bits a FUSE
// export reports (rbd-fuse says 0666) give nobody else access.
func onPrivateFUSE(f *os.File) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && st.Type == unix.FUSE_SUPER_MAGIC
}

// openLoopNode opens /dev/loopN, creating the node when the host has no
// devtmpfs entry for it yet.
func openLoopNode(path string, n int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		if merr := unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); merr != nil && !errors.Is(merr, unix.EEXIST) {
			return nil, &os.PathError{Op: "mknod", Path: path, Err: merr}
		}
		f, err = os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open loop device: %w", err)
	}
	return f, nil
}

func configure(dev, backing *os.File, tag string, directIO bool) error {
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if directIO {
		cfg.Info.Flags |= unix.LO_FLAGS_DIRECT_IO
	}
	copy(cfg.Info.File_name[:], tag)
	_, err := retryEINTR(func() (int, error) { return 0, unix.IoctlLoopConfigure(int(dev.Fd()), &cfg) })
	return err
}

// List implements Loops: attached devices whose tag starts with prefix.
func (d *LoopDevices) List(ctx context.Context, prefix string) ([]LoopInfo, error) {
	entries, err := os.ReadDir(d.SysBlock)
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	var out []LoopInfo
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "loop")
		num, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		info, ok := d.inspect(e.Name(), num)
		if ok && strings.HasPrefix(info.Tag, prefix) {
			out = append(out, info)
		}
	}
	return out, ctx.Err()
}

// inspect reads one device; ok is false when it is not attached (or went
// away while we looked).
func (d *LoopDevices) inspect(name string, num int) (LoopInfo, bool) {
	dir := filepath.Join(d.SysBlock, name)
	backing, err := os.ReadFile(filepath.Join(dir, "loop", "backing_file"))
	if err != nil {
		return LoopInfo{}, false
	}
	info := LoopInfo{Path: "/dev/" + name, Number: num, Backing: strings.TrimSpace(string(backing))}
	if devno, err := os.ReadFile(filepath.Join(dir, "dev")); err == nil {
		maj, min, _ := strings.Cut(strings.TrimSpace(string(devno)), ":")
		ma, _ := strconv.ParseUint(maj, 10, 32)
		mi, _ := strconv.ParseUint(min, 10, 32)
		info.Major, info.Minor = uint32(ma), uint32(mi)
	}
	tag, err := readTagBounded(info.Path)
	if err != nil {
		return LoopInfo{}, false
	}
	info.Tag = tag
	return info, true
}

// tagWait bounds reading one device's tag: LOOP_GET_STATUS64 stats the
// backing file, and a loop device over a FUSE file whose server is stopped
// or fenced (an rbd volume's data path) would hang every listing on the
// host. Such a device is left out; its reader finishes when the FUSE
// connection is aborted.
const tagWait = 2 * time.Second

func readTagBounded(path string) (string, error) {
	type result struct {
		tag string
		err error
	}
	done := make(chan result, 1)
	go func() {
		tag, err := readTag(path)
		done <- result{tag, err}
	}()
	select {
	case r := <-done:
		return r.tag, r.err
	case <-time.After(tagWait):
		return "", fmt.Errorf("%s: LOOP_GET_STATUS64 did not answer in %s", path, tagWait)
	}
}

func readTag(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return "", &os.PathError{Op: "LOOP_GET_STATUS64", Path: path, Err: err}
	}
	return tagOf(st), nil
}

func tagOf(st *unix.LoopInfo64) string {
	name := st.File_name[:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name)
}

// Detach implements Loops. The exclusive open fails while a filesystem on
// the device is mounted (ErrBusy); a device whose tag is not ours is never
// detached, nor opened exclusively: the tag is read first through a plain
// open, because an exclusive open of a device another volume has just been
// given (ours autocleared, the number reused) would make that volume's
// mount fail with EBUSY. A device that other processes hold open (not
// mounted) is detached by the kernel when the last of them closes it.
func (d *LoopDevices) Detach(_ context.Context, path, tag string) error {
	got, err := readTagBounded(path)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENXIO):
		return nil // not attached any more
	case err != nil:
		return fmt.Errorf("detach %s: %w", path, err)
	case got != tag:
		return fmt.Errorf("detach %s: tagged %q, not %q; %w (not ours)", path, got, tag, ErrBusy)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_EXCL, 0)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENXIO):
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("detach %s: %w", path, ErrBusy)
	case err != nil:
		return fmt.Errorf("detach: %w", err)
	}
	defer f.Close()
	// Check again through the exclusive fd: between the two opens the
	// device may have been cleared and given to another volume.
	st, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if errors.Is(err, unix.ENXIO) {
		return nil // not attached any more
	}
	if err != nil {
		return fmt.Errorf("detach %s: LOOP_GET_STATUS64: %w", path, err)
	}
	if got := tagOf(st); got != tag {
		return fmt.Errorf("detach %s: tagged %q, not %q; %w (not ours)", path, got, tag, ErrBusy)
	}
	_, err = retryEINTR(func() (int, error) { return 0, unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0) })
	if err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s: LOOP_CLR_FD: %w", path, err)
	}
	return nil
}

func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
