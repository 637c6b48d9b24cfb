package faultydev

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// Device is a loop device whose reads below FailBelow fail with EIO.
type Device struct {
	// Path is the loop device, /dev/loopN.
	Path string
	file *file
}

// Writes returns how many writes reached the device's backing file.
func (d *Device) Writes() int64 { return d.file.writes.Load() }

// New serves a zeroed file of size bytes whose reads overlapping its first
// failBelow bytes fail with EIO, attaches a loop device to it and
// registers a cleanup that detaches it and unmounts the FUSE filesystem.
func New(t testing.TB, size, failBelow int64) *Device {
	t.Helper()
	testenv.RequireRoot(t)
	_, err := os.Stat("/dev/fuse")
	testenv.Require(t, err == nil, "/dev/fuse (FUSE in the kernel)")
	losetup := testenv.RequireTool(t, "losetup")

	dir := t.TempDir()
	data, err := os.OpenFile(filepath.Join(dir, "data"), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close() })
	if err := data.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f := &file{data: data, size: size, failBelow: failBelow}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	server, err := fs.Mount(mnt, &root{file: f}, &fs.Options{MountOptions: fuse.MountOptions{
		FsName: "faultydev", Name: "faultydev", AllowOther: true, DirectMountStrict: true,
	}})
	if err != nil {
		t.Fatalf("serve the FUSE file: %v", err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount the FUSE file system: %v", err)
		}
	})
	out, err := exec.Command(losetup, "--find", "--show", filepath.Join(mnt, "disk")).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	d := &Device{Path: strings.TrimSpace(string(out)), file: f}
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "-d", d.Path).CombinedOutput(); err != nil {
			t.Errorf("detach %s: %v %s", d.Path, err, out)
		}
	})
	return d
}

// root is the FUSE filesystem's root directory, holding the one file "disk".
type root struct {
	fs.Inode
	file *file
}

var _ fs.NodeOnAdder = (*root)(nil)

func (r *root) OnAdd(ctx context.Context) {
	r.AddChild("disk", r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

// file serves a regular file from data, failing reads of its head.
type file struct {
	fs.Inode
	data      *os.File
	size      int64
	failBelow int64
	writes    atomic.Int64
}

var (
	_ fs.NodeOpener    = (*file)(nil)
	_ fs.NodeReader    = (*file)(nil)
	_ fs.NodeWriter    = (*file)(nil)
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeFsyncer   = (*file)(nil)
)

// Open asks for direct I/O: every read reaches Read, none is answered from
// the page cache.
func (f *file) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *file) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < f.failBelow {
		return nil, syscall.EIO
	}
	n, err := f.data.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *file) Write(_ context.Context, _ fs.FileHandle, b []byte, off int64) (uint32, syscall.Errno) {
	f.writes.Add(1)
	if off+int64(len(b)) > f.size {
		return 0, syscall.ENOSPC
	}
	n, err := f.data.WriteAt(b, off)
	if err != nil {
		return uint32(n), syscall.EIO
	}
	return uint32(n), 0
}

func (f *file) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(f.size)
	return 0
}

func (f *file) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno { return 0 }
