package process

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ID is a process as recorded: pid and start time (clock ticks since
// boot), which together never name two processes.
type ID struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Of returns the identity of a running pid.
func Of(pid int) (ID, error) {
	_, start, err := stat(pid)
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
	state, start, err := stat(id.PID)
	return err == nil && start == id.Start && state != 'Z' && state != 'X'
}

// stat returns the state (field 3) and start time (field 22) of pid.
func stat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ')' are fixed, starttime the 20th of them.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return fields[0][0], start, nil
}
