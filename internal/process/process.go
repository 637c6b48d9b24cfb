package process

import "github.com/mooring-dev/mooring/internal/procstat"

// ID is a process as recorded: pid and start time (clock ticks since
// boot), which together never name two processes.
type ID struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Of returns the identity of a running pid.
func Of(pid int) (ID, error) {
	_, start, err := procstat.Read(pid)
	if err != nil {
		return ID{}, err
	}
	return ID{PID: pid, Start: start}, nil
}

// Alive reports whether the recorded process still runs: same pid, same
// start time, not a zombie.
func (id ID) Alive() bool {
	if id.PID <= 0 {
		return false
	}
	state, start, err := procstat.Read(id.PID)
	return err == nil && start == id.Start && state != 'Z' && state != 'X'
}
