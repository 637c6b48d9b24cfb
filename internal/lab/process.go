package lab

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a long-running process a test started (containerd, CRI-O,
// kubelet, mooring-nri), its output in a log file. It is only ever
// signalled by its own PID.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// StartProcess starts argv with env added, stdout and stderr to logPath.
func StartProcess(tb testing.TB, logPath string, env []string, argv ...string) *Process {
	tb.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	d := &Process{name: argv[0], cmd: exec.Command(argv[0], argv[1:]...), logPath: logPath, exited: make(chan struct{})}
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatal(err)
	}
	go func() { d.cmd.Wait(); logFile.Close(); close(d.exited) }()
	return d
}

// Log returns the process's output so far, for failure messages.
func (d *Process) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// WaitReady polls ready until it returns true; the test fails if the
// process exits or timeout passes first.
func (d *Process) WaitReady(tb testing.TB, timeout time.Duration, ready func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-d.exited:
			tb.Fatalf("%s exited:\n%s", d.name, d.Log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready in %s:\n%s", d.name, timeout, d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and, after grace, SIGKILL; it returns once the
// process is gone.
func (d *Process) Stop(grace time.Duration) {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(grace):
		d.cmd.Process.Kill()
		<-d.exited
	}
}
