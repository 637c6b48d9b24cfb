package nsmount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/oci"
	"github.com/mooring-dev/mooring/internal/procstat"
)

// Mount is one staged host mount to bring into the container.
type Mount struct {
	// Source is the staged mount point on the host.
	Source string
	// Target is the absolute path inside the container.
	Target string
	// ReadOnly makes the container's mount read-only.
	ReadOnly bool
}

// Into mounts each m.Source at m.Target inside the mount namespace of pid,
// under root: the container's root filesystem as an absolute path in that
// namespace (runc's and crun's rootfs before pivot_root). start is the
// process's start time (procstat) as the caller recorded it: the process
// is pinned with a pidfd and refused if it is not that one any more (the
// pid was reused). On error nothing it mounted stays mounted.
func Into(pid int, start uint64, root string, mounts []Mount) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("container root %q is not absolute", root)
	}
	root = filepath.Clean(root)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pin container process %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	defer unix.Close(pidfd)
	// Checked after pinning: from here on the pid cannot name another process.
	if _, now, err := procstat.Read(pid); err != nil {
		return fmt.Errorf("container process: %w", err)
	} else if now != start {
		return fmt.Errorf("process %d is not the container's process any more (started at tick %d, recorded %d)", pid, now, start)
	}

	trees := make([]int, 0, len(mounts))
	defer func() {
		for _, fd := range trees {
			unix.Close(fd)
		}
	}()
	for _, m := range mounts {
		fd, err := cloneStaged(m)
		if err != nil {
			return err
		}
		trees = append(trees, fd)
	}

	return onThrowawayThread(func() error { return inNamespace(pidfd, root, mounts, trees) })
}

// onThrowawayThread runs fn on a locked OS thread that ends with it, so no
// other goroutine ever runs in the namespace fn enters. That thread is never
// the main thread: Go parks a main thread left locked instead of ending it,
// and /proc/self (mountinfo, used by the caller's cleanup) names that
// thread, so it must stay in the host's namespaces.
func onThrowawayThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			done <- fn()
			return // still locked: the thread exits with the goroutine
		}
		// Keep the main thread pinned here so the nested goroutine gets
		// another one, then give it back unchanged.
		defer runtime.UnlockOSThread()
		done <- onThrowawayThread(fn)
	}()
	return <-done
}

// cloneStaged clones the staged mount in the host namespace as a detached
// mount with the container's mount attributes.
func cloneStaged(m Mount) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return -1, fmt.Errorf("clone staged mount %s: %w", m.Source, os.NewSyscallError("open_tree", err))
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, Propagation: unix.MS_PRIVATE}
	if m.ReadOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	// AT_RECURSIVE: a read-only volume stays read-only in every submount.
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set attributes of %s: %w", m.Source, os.NewSyscallError("mount_setattr", err))
	}
	return fd, nil
}

// inNamespace runs on a locked thread that is thrown away afterwards.
func inNamespace(pidfd int, root string, mounts []Mount, trees []int) (err error) {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare(CLONE_FS)", err)
	}
	if err := unix.Setns(pidfd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("enter the container's mount namespace: %w", os.NewSyscallError("setns", err))
	}
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open container root: %w", err)
	}
	defer rootDir.Close()

	var done []string
	defer func() {
		if err == nil {
			return
		}
		for _, p := range done {
			if uerr := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo mount at %s: %w", p, uerr))
			}
		}
	}()
	for i, m := range mounts {
		resolved, err := attach(rootDir, m, trees[i])
		if err != nil {
			return fmt.Errorf("mount %s in the container: %w", m.Target, err)
		}
		done = append(done, resolved)
	}
	return nil
}

// attach creates m.Target inside the root (never leaving it, under the
// shared target rule) and moves the cloned tree onto it. It returns the
// path it mounted at, in the namespace.
func attach(rootDir *os.File, m Mount, tree int) (string, error) {
	target, err := oci.MkdirInRoot(rootDir, m.Target)
	if err != nil {
		return "", err
	}
	defer target.File.Close()
	err = unix.MoveMount(tree, "", int(target.File.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		return "", os.NewSyscallError("move_mount", err)
	}
	return target.Path, nil
}
