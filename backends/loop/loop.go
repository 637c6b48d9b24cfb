package loop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/atomicfile"
)

// Pool is one loop pool on this host.
type Pool struct {
	Name string
	// Dir holds the images; MakeDir says mooring may create it (the derived
	// default directory; a directory the admin named must exist).
	Dir     string
	MakeDir bool
	// Preallocate makes images fully allocated (fallocate) instead of
	// sparse; Cache is how their loop devices use the host's page cache.
	Preallocate bool
	Cache       devices.Cache
	Loops       devices.Loops
	// LockAllocation serializes loop-device allocation on the host; the
	// returned func unlocks.
	LockAllocation func(ctx context.Context) (func(), error)
}

var _ backends.Backend = (*Pool)(nil)

// Tag is the lo_file_name of the volume's loop device.
func Tag(volumeID string) string { return devices.TagPrefix + volumeID }

// Create makes a sparse image file of v.Size bytes, 0600, atomically: a
// crash or a full disk leaves no partial image under the final name.
func (p *Pool) Create(_ context.Context, v *backends.Volume, _ []string) error {
	path := filepath.Join(p.Dir, v.ID+".img")
	if p.MakeDir {
		if err := os.MkdirAll(p.Dir, 0o700); err != nil {
			return fmt.Errorf("pool %q: %w", p.Name, err)
		}
	}
	if err := devices.CheckPoolDir(p.Dir); err != nil {
		return fmt.Errorf("pool %q: %w", p.Name, err)
	}
	space, err := devices.StatPoolFS(p.Dir)
	if err != nil {
		return fmt.Errorf("pool %q: %w", p.Name, err)
	}
	// The image is sparse, but mkfs writes into it right away and the
	// tenant after that: a pool that cannot hold it fails here.
	if err := space.Check(p.Name, v.Size); err != nil {
		return err
	}
	tmp := path + ".partial"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool %q: %w", p.Name, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("pool %q: create image (is the pool directory writable?): %w", p.Name, devices.MarkNoSpace(err))
	}
	size := func(f *os.File) error { return f.Truncate(v.Size) }
	if p.Preallocate {
		size = func(f *os.File) error { return unix.Fallocate(int(f.Fd()), 0, 0, v.Size) }
	}
	if err := atomicfile.Commit(f, path, size); err != nil {
		return fmt.Errorf("pool %q: create image: %w", p.Name, devices.MarkNoSpace(err))
	}
	v.Backing = path
	return nil
}

// Delete removes the image.
func (p *Pool) Delete(_ context.Context, v backends.Volume) error {
	if v.Backing == "" {
		return nil
	}
	if err := os.Remove(v.Backing); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove image: %w", err)
	}
	return nil
}

// Attach backs a free loop device with the image. Our own leftovers from
// a crashed Acquire are detached first (the caller holds the volume lock,
// so nobody uses them); a loop device on the image that is not ours means
// something outside mooring uses it, and Attach refuses.
func (p *Pool) Attach(ctx context.Context, v backends.Volume) (backends.Attached, error) {
	loops, err := p.Loops.List(ctx, "")
	if err != nil {
		return backends.Attached{}, err
	}
	for _, l := range loops {
		switch {
		case l.Tag == Tag(v.ID) && l.Backing != v.Backing:
			// Ours on another file: the volume's own device while a
			// snapshot of it is attached here (v.Backing is the
			// snapshot); gc and Detach find it by its tag.
		case l.Tag == Tag(v.ID):
			if err := p.Loops.Detach(ctx, l.Path, l.Tag); err != nil {
				return backends.Attached{}, fmt.Errorf("%w: leftover device %s: %w", backends.ErrInUse, l.Path, err)
			}
		case l.Backing == v.Backing:
			return backends.Attached{}, fmt.Errorf("%w: image %s is attached at %s by something other than mooring", backends.ErrInUse, v.Backing, l.Path)
		}
	}
	unlock, err := p.LockAllocation(ctx)
	if err != nil {
		return backends.Attached{}, err
	}
	defer unlock()
	loop, err := p.Loops.Attach(ctx, v.Backing, Tag(v.ID), p.Cache)
	if err != nil {
		return backends.Attached{}, fmt.Errorf("attach %s: %w", v.Backing, err)
	}
	return backends.Attached{Device: loop.Path(), Hold: loop}, nil
}

// Detach detaches the volume's loop device (device, when known, else every
// device tagged with the volume's id). A device a container's mount
// namespace still holds detaches by itself when it goes (autoclear).
func (p *Pool) Detach(ctx context.Context, v backends.Volume, device string, _ json.RawMessage) error {
	paths := []string{device}
	if device == "" {
		var err error
		if paths, err = p.Attached(ctx, v); err != nil {
			return err
		}
	}
	var errs []error
	for _, d := range paths {
		if err := p.Loops.Detach(ctx, d, Tag(v.ID)); err != nil && !errors.Is(err, devices.ErrBusy) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Attached lists the loop devices tagged with the volume's id.
func (p *Pool) Attached(ctx context.Context, v backends.Volume) ([]string, error) {
	loops, err := p.Loops.List(ctx, Tag(v.ID))
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(loops))
	for _, l := range loops {
		paths = append(paths, l.Path)
	}
	return paths, nil
}

// CheckStage refuses to stage a volume whose sparse image could still
// grow into the reserve the pool keeps free: an image that hits a full
// filesystem turns a container's writes into I/O errors. A fully
// allocated image needs no room.
func (p *Pool) CheckStage(_ context.Context, v backends.Volume) error {
	used, err := devices.Allocated(v.Backing)
	if err != nil {
		return err
	}
	fs, err := devices.StatPoolFS(filepath.Dir(v.Backing))
	if err != nil {
		return fmt.Errorf("pool %q: %w", p.Name, err)
	}
	return fs.Check(p.Name, v.Size-used)
}

// Capacity is the size of the directory's filesystem minus its reserve.
func (p *Pool) Capacity(context.Context) (int64, error) {
	fs, err := devices.StatPoolFS(p.Dir)
	if err != nil {
		return 0, fmt.Errorf("pool %q: %w", p.Name, err)
	}
	return max(fs.Size-fs.Reserve(), 0), nil
}

// Free is the free space of the directory's filesystem.
func (p *Pool) Free() (int64, error) {
	fs, err := devices.StatPoolFS(p.Dir)
	return fs.Free, err
}

// Used is the image's allocated bytes.
func (p *Pool) Used(_ context.Context, v backends.Volume) (int64, error) {
	return devices.Allocated(v.Backing)
}

// FormatsOnlyZeroed is false: mooring made the image, sparse and zero.
func (p *Pool) FormatsOnlyZeroed() bool { return false }
