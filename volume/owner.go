package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"

	"github.com/mooring-dev/mooring/internal/procstat"
)

// ownerIDPattern admits the container ids of runc, containerd, docker,
// podman and CRI-O; the id names a journal file, so no separators.
var ownerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$`)

// tenantPattern is a Kubernetes namespace name (a DNS label).
var tenantPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (o Owner) validate() error {
	if !ownerIDPattern.MatchString(o.ID) {
		return fmt.Errorf("%w: id %q must match %s", ErrInvalidOwner, o.ID, ownerIDPattern)
	}
	return validTenant(o.Tenant)
}

func validTenant(t string) error {
	if !tenantPattern.MatchString(t) {
		return fmt.Errorf("%w: tenant %q must be a DNS label", ErrInvalidOwner, t)
	}
	return nil
}

// ProcessStart returns the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat); with the pid it identifies a process
// across pid reuse.
func ProcessStart(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat returns the state (field 3: R, S, Z for a zombie, ...) and the
// start time of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	return procstat.Read(pid)
}

// OwnerAlive reports whether the owner's recorded identity still exists:
// its process (same pid and start time, not a zombie: an exited container
// whose parent has not reaped it is gone), or its runtime state file. An
// owner with neither recorded is assumed alive: only its front-end (the
// NRI plugin's Synchronize) can tell.
func OwnerAlive(o Owner) bool {
	if o.PID <= 0 && o.StatePath == "" {
		return true
	}
	if o.PID > 0 {
		state, start, err := procStat(o.PID)
		if err == nil && state != 'Z' && state != 'X' && (o.PIDStart == 0 || start == o.PIDStart) {
			return true
		}
	}
	if o.StatePath != "" {
		_, err := os.Stat(o.StatePath)
		return !errors.Is(err, fs.ErrNotExist)
	}
	return false
}
