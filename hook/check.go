package hook

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/oci"
)

// StageCheckMounts is the createRuntime hook the NRI plugin adds to a
// container it gave volumes: `mooring hook check-mounts SOURCE...`, one
// staged mount point per volume. NRI hands the target to the runtime,
// which resolves it in the rootfs itself (through the image's symlinks);
// the plugin never sees the rootfs. This hook runs after the runtime made
// the spec's mounts and before pivot_root and the user's program, and
// applies the target rule to where each volume really landed.
const StageCheckMounts = "check-mounts"

// ReadOnlyDeviceArg starts an argument of check-mounts that names the
// device (MAJOR:MINOR) of a read-only raw block volume: the hook checks
// that the device cgroup rules the runtime wrote deny writes to it (a
// runtime may drop the plugin's rules; CRI-O 1.34 does).
const ReadOnlyDeviceArg = "--read-only-device="

// checkMounts reads the state and verifies the container's mounts of the
// staged sources and the rules of its read-only devices.
func checkMounts(stdin io.Reader, args []string) error {
	var sources []string
	var readOnly [][2]int64
	for _, a := range args {
		dev, ok := strings.CutPrefix(a, ReadOnlyDeviceArg)
		if !ok {
			sources = append(sources, a)
			continue
		}
		var major, minor int64
		if _, err := fmt.Sscanf(dev, "%d:%d", &major, &minor); err != nil {
			return fmt.Errorf("check-mounts: %q: want %sMAJOR:MINOR", a, ReadOnlyDeviceArg)
		}
		readOnly = append(readOnly, [2]int64{major, minor})
	}
	if len(sources) == 0 && len(readOnly) == 0 {
		return errors.New("check-mounts: want the staged mount points of the volumes")
	}
	state, err := oci.ReadState(stdin)
	if err != nil {
		return err
	}
	if state.Pid <= 0 {
		return errors.New("check-mounts: no container process in the OCI state (run it at createRuntime)")
	}
	spec, err := oci.LoadSpec(state.Bundle)
	if err != nil {
		return err
	}
	for _, d := range readOnly {
		if writable(spec, d[0], d[1]) {
			return fmt.Errorf("read-only raw block volume: the runtime's device cgroup rules let the container write device %d:%d (it did not apply the plugin's rules); refusing", d[0], d[1])
		}
	}
	if len(sources) == 0 {
		return nil
	}
	root, err := oci.RootPath(state.Bundle, spec.Root)
	if err != nil {
		return err
	}
	// The runtime names the rootfs by its real path in the namespace
	// (runc resolves it before mounting it onto itself).
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return fmt.Errorf("container root: %w", err)
	}
	staged := make([]stagedDev, 0, len(sources))
	for _, s := range sources {
		d, err := stagedDevice(s)
		if err != nil {
			return err
		}
		staged = append(staged, d)
	}
	mounts, err := containerMounts(state.Pid)
	if err != nil {
		return err
	}
	return verifyMounts(root, staged, mounts)
}

// stagedDev is a staged mount and the device it mounts.
type stagedDev struct {
	Source       string
	Major, Minor int
}

// stagedDevice finds the staged mount at source in the host's mount table.
func stagedDevice(source string) (stagedDev, error) {
	real, err := filepath.EvalSymlinks(source)
	if err != nil {
		return stagedDev{}, fmt.Errorf("staged mount %s: %w", source, err)
	}
	m, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(real))
	if err != nil {
		return stagedDev{}, fmt.Errorf("host mount table: %w", err)
	}
	if len(m) == 0 {
		return stagedDev{}, fmt.Errorf("%s is not a staged mount", source)
	}
	last := m[len(m)-1] // the one on top
	return stagedDev{Source: source, Major: last.Major, Minor: last.Minor}, nil
}

// containerMounts reads the mount table of the container's namespace,
// pinned by a pidfd so a reused pid cannot answer for it.
func containerMounts(pid int) ([]*mountinfo.Info, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pin container process %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	defer unix.Close(pidfd)
	mounts, err := mountinfo.PidMountInfo(pid)
	if err != nil {
		return nil, fmt.Errorf("container mount table: %w", err)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return nil, fmt.Errorf("container process %d went away: %w", pid, err)
	}
	return mounts, nil
}

// verifyMounts applies the target rule to every mount of a staged device
// at or below root in the container's mount table (the namespace still
// holds copies of the host's mounts outside the root, the staging mounts
// among them). Each volume must be mounted there at least once.
func verifyMounts(root string, staged []stagedDev, mounts []*mountinfo.Info) error {
	root = strings.TrimSuffix(root, "/")
	for _, s := range staged {
		found := false
		for _, m := range mounts {
			if m.Major != s.Major || m.Minor != s.Minor || (m.Mountpoint != root && !strings.HasPrefix(m.Mountpoint, root+"/")) {
				continue
			}
			if _, err := oci.CheckInRoot(root, m.Mountpoint); err != nil {
				return fmt.Errorf("volume staged at %s: %w", s.Source, err)
			}
			found = true
		}
		if !found {
			return fmt.Errorf("volume staged at %s is not mounted in the container", s.Source)
		}
	}
	return nil
}

// writable reports whether the spec's device cgroup rules let the
// container write the block device major:minor: the last rule that
// matches it and names "w" decides, as in the runtime's cgroup (no rule:
// writable, the cgroup's parent may allow it).
func writable(spec *specs.Spec, major, minor int64) bool {
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return true
	}
	w := true
	for _, r := range spec.Linux.Resources.Devices {
		if (r.Type == "" || r.Type == "a" || r.Type == "b") && matches(r.Major, major) && matches(r.Minor, minor) && strings.Contains(r.Access, "w") {
			w = r.Allow
		}
	}
	return w
}

// matches reports whether a rule's number (nil or -1: any) covers n.
func matches(rule *int64, n int64) bool { return rule == nil || *rule == -1 || *rule == n }
