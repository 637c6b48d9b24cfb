package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Read returns the state (field 3: R, S, Z for a zombie, ...) and the start
// time in clock ticks since boot (field 22) of pid.
func Read(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return parse(pid, b)
}

// parse reads a stat line. The command name (field 2) may contain spaces
// and parentheses; the fields after the last ')' are fixed. starttime is
// the 20th field after the name.
func parse(pid int, b []byte) (state byte, start uint64, err error) {
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
