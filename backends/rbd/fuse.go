package rbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/process"
)

// helperStopWait is how long a helper gets to flush and exit on SIGTERM
// before its FUSE connection is aborted and it is killed.
const helperStopWait = 10 * time.Second

// mountPoint is where the image's FUSE export is mounted: a file for
// qemu-storage-daemon, a directory holding a file named after the image
// for rbd-fuse.
func (d *DataPath) mountPoint(image string) string {
	if d.FUSETool == ToolRBDFuse {
		return filepath.Join(d.RunDir, image+".d")
	}
	return filepath.Join(d.RunDir, image)
}

// backingFile is the file the loop device reads and writes.
func (d *DataPath) backingFile(image string) string {
	if d.FUSETool == ToolRBDFuse {
		return filepath.Join(d.mountPoint(image), image)
	}
	return d.mountPoint(image)
}

// helperArgs is the helper's argv (without the program) and extra
// environment. qemu-storage-daemon runs librbd with the page cache of the
// FUSE file bypassed (cache.direct=on) so a node never reads stale data;
// it stays in the foreground so that its pid is ours to record.
func (d *DataPath) helperArgs(image string) (args, env []string) {
	c := d.Cluster
	if d.FUSETool == ToolRBDFuse {
		// rbd-fuse takes its identity only from CEPH_ARGS.
		return []string{"-c", c.Conf, "-p", c.Pool, "-r", image, "-f", d.mountPoint(image)},
			[]string{"CEPH_ARGS=--id " + c.ClientID}
	}
	return []string{
		"--blockdev", "driver=rbd,node-name=vol,pool=" + c.Pool + ",image=" + image + ",conf=" + c.Conf +
			",user=" + c.ClientID + ",cache.direct=on",
		"--export", "type=fuse,id=vol,node-name=vol,mountpoint=" + d.mountPoint(image) + ",writable=on",
	}, nil
}

func (d *DataPath) attachFUSE(ctx context.Context, image, tag string) (*Attachment, io.Closer, error) {
	mp := d.mountPoint(image)
	switch m, err := fuseMount(mp); {
	case err != nil:
		return nil, nil, err
	case m != nil:
		return nil, nil, fmt.Errorf("%s is already mounted (a leftover? detach it first)", mp)
	}
	if err := os.MkdirAll(d.RunDir, 0o700); err != nil {
		return nil, nil, err
	}
	var err error
	if d.FUSETool == ToolRBDFuse {
		err = os.Mkdir(mp, 0o700)
	} else {
		var f *os.File
		f, err = os.OpenFile(mp, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			err = f.Close()
		}
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return nil, nil, fmt.Errorf("FUSE mount point: %w", err)
	}
	h, err := d.startHelper(ctx, image)
	if err != nil {
		return nil, nil, err
	}
	a := &Attachment{Image: image, Map: MapFUSE, LoopTag: tag, Helper: h}
	loop, err := d.Loops.Attach(ctx, d.backingFile(image), tag, devices.CacheDirect)
	if err == nil {
		a.Device = loop.Path()
		err = requireDirectIO(loop.Path())
		if err != nil {
			loop.Close()
		}
	}
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("loop device on the FUSE export: %w", err), d.stopHelper(h))
	}
	return a, loop, nil
}

// requireDirectIO refuses a loop device that fell back to buffered I/O:
// the host page cache would serve this node stale data another node wrote.
func requireDirectIO(dev string) error {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "dio"))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("%s: direct I/O refused on the FUSE export", dev)
	}
	return nil
}

// startHelper starts the FUSE export detached (its own session, so it
// outlives the hook that starts it and no terminal or group signal reaches
// it) and waits until it has mounted, died, or the cluster timeout passed.
func (d *DataPath) startHelper(ctx context.Context, image string) (*Helper, error) {
	path, err := devices.LookTool(d.FUSETool)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(d.RunDir, image+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args, env := d.helperArgs(image)
	cmd := exec.Command(path, args...)
	cmd.Env = append(devices.ToolEnv(), env...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", d.FUSETool, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it if it dies while we live
	h := &Helper{Tool: d.FUSETool, ID: process.ID{PID: cmd.Process.Pid}, Mount: d.mountPoint(image)}
	if id, err := process.Of(h.PID); err == nil {
		h.ID = id
	}
	ctx, cancel := context.WithTimeout(ctx, d.Cluster.timeout())
	defer cancel()
	for {
		m, err := fuseMount(h.Mount)
		if err == nil && m != nil {
			return h, nil
		}
		select {
		case <-exited:
			return nil, errors.Join(fmt.Errorf("%s exited before exporting %s: %s", d.FUSETool, image, lastLogLine(logPath)), d.stopHelper(h))
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("%s did not export %s: %w", d.FUSETool, image, ctx.Err()), d.stopHelper(h))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lastLogLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func (d *DataPath) detachFUSE(_ context.Context, a *Attachment) error {
	if a.Helper == nil || a.Helper.Mount == "" {
		return nil
	}
	// The loop device over the export (autoclear) goes once the
	// filesystem on it is unmounted; a helper that cannot flush (fenced)
	// holds it until the helper is stopped.
	backing := d.backingFile(a.Image)
	loops, mounted, err := loopOn(backing)
	if err != nil {
		return fmt.Errorf("detach %s: %w", a.Image, err)
	}
	if mounted {
		return fmt.Errorf("detach %s: %v still mounted: %w", a.Image, loops, devices.ErrBusy)
	}
	if len(loops) > 0 {
		waitUntil(loopClearWait, func() bool { l, _, _ := loopOn(backing); return len(l) == 0 })
	}
	if err := d.stopHelper(a.Helper); err != nil {
		return fmt.Errorf("detach %s: %w", a.Image, err)
	}
	// A loop device still there is held by a mount namespace the host
	// does not see (a container of a node that lost the volume): its I/O
	// fails now that the helper is gone, and autoclear detaches it when
	// that namespace goes.
	waitUntil(loopClearWait, func() bool { l, _, _ := loopOn(backing); return len(l) == 0 })
	return nil
}

// loopClearWait is how long a loop device over a FUSE export gets to go
// away by itself: it is attached with autoclear, and the kernel clears it
// asynchronously after the last close, flushing through the helper.
const loopClearWait = 5 * time.Second

// loopOn returns the loop devices (/sys/block names) backed by file and
// whether one of them is mounted. It reads sysfs and mountinfo only: a
// LOOP_GET_STATUS64 on a loop over a wedged FUSE file (a fenced rbd-fuse)
// hangs in getattr.
func loopOn(file string) (names []string, mounted bool, err error) {
	entries, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, false, err
	}
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil || strings.TrimSpace(string(b)) != file {
			continue
		}
		name := filepath.Base(filepath.Dir(filepath.Dir(e)))
		names = append(names, name)
		devno, err := os.ReadFile(filepath.Join("/sys/block", name, "dev"))
		if err != nil {
			continue
		}
		majMin := strings.TrimSpace(string(devno))
		ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
			return fmt.Sprintf("%d:%d", m.Major, m.Minor) != majMin, false
		})
		if err != nil {
			return nil, false, err
		}
		mounted = mounted || len(ms) > 0
	}
	return names, mounted, nil
}

// stopHelper ends a helper and its mount, never hanging on it: SIGTERM
// lets it flush and unmount; a helper that does not go in time (fenced:
// librbd retries, rbd-fuse ignores SIGTERM and lookups on its mount hang)
// gets its FUSE connection aborted, so every pending and later request
// fails with an I/O error, and SIGKILL; a mount still there is detached.
// The mount point is never stat'ed: on a wedged FUSE mount that hangs.
func (d *DataPath) stopHelper(h *Helper) error {
	if h.Alive() {
		unix.Kill(h.PID, unix.SIGTERM)
	}
	gone := func() bool {
		m, _ := fuseMount(h.Mount)
		return m == nil && !h.Alive()
	}
	if !waitUntil(helperStopWait, gone) {
		var errs []error
		if m, _ := fuseMount(h.Mount); m != nil {
			errs = append(errs, abortFUSE(m.Minor))
		}
		if h.Alive() {
			unix.Kill(h.PID, unix.SIGKILL)
		}
		if !waitUntil(helperStopWait, func() bool { return !h.Alive() }) {
			errs = append(errs, fmt.Errorf("%s (pid %d) survived SIGKILL", h.Tool, h.PID))
		}
		if m, _ := fuseMount(h.Mount); m != nil {
			if err := unix.Unmount(h.Mount, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, &os.PathError{Op: "umount", Path: h.Mount, Err: err})
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("stop %s: %w", h.Tool, err)
		}
	}
	if err := os.Remove(h.Mount); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop %s: %w", h.Tool, err)
	}
	return nil
}

func waitUntil(limit time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// fuseMount returns the FUSE mount at exactly mp, or nil.
func fuseMount(mp string) (*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mp))
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if strings.HasPrefix(m.FSType, "fuse") {
			return m, nil
		}
	}
	return nil, nil
}

// abortFUSE aborts FUSE connection minor through fusectl, mounted
// detached (fsmount without move_mount): nothing appears in any mount
// table, and it needs no fusectl mounted on the host.
func abortFUSE(minor int) error {
	fs, err := unix.Fsopen("fusectl", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("fsopen fusectl", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return os.NewSyscallError("fsconfig fusectl", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fsmount fusectl", err)
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, strconv.Itoa(minor)+"/abort", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil // the connection is gone already
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: "fusectl/" + strconv.Itoa(minor) + "/abort", Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("1")); err != nil {
		return &os.PathError{Op: "write", Path: "fusectl/" + strconv.Itoa(minor) + "/abort", Err: err}
	}
	return nil
}

// fuseLeftovers finds helpers (by command line) and FUSE mounts under
// RunDir, whether or not a journal knows them.
func (d *DataPath) fuseLeftovers() ([]Attachment, error) {
	byMount := map[string]*Attachment{}
	found := func(mp string) *Attachment {
		if a, ok := byMount[mp]; ok {
			return a
		}
		image := strings.TrimSuffix(filepath.Base(mp), ".d")
		a := &Attachment{Image: image, Map: MapFUSE, Helper: &Helper{Mount: mp}}
		byMount[mp] = a
		return a
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(d.RunDir))
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if strings.HasPrefix(m.FSType, "fuse") {
			found(m.Mountpoint)
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		tool, mp, ok := helperOf(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), d.RunDir)
		if !ok {
			continue
		}
		id, err := process.Of(pid)
		if err != nil {
			continue
		}
		h := found(mp).Helper
		h.Tool, h.ID = tool, id
	}
	out := make([]Attachment, 0, len(byMount))
	for _, a := range byMount {
		out = append(out, *a)
	}
	return out, nil
}

// helperOf recognises a FUSE helper's command line and its mount point
// under dir.
func helperOf(argv []string, dir string) (tool, mp string, ok bool) {
	if len(argv) == 0 {
		return "", "", false
	}
	tool = filepath.Base(argv[0])
	if tool != ToolQSD && tool != ToolRBDFuse {
		return "", "", false
	}
	for _, arg := range argv[1:] {
		for _, field := range strings.Split(arg, ",") {
			field = strings.TrimPrefix(field, "mountpoint=")
			if strings.HasPrefix(field, dir+"/") {
				return tool, field, true
			}
		}
	}
	return "", "", false
}
