package lab

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// daemon is an engine process the harness started (containerd, CRI-O,
// kubelet), its output in a log file. It is only ever signalled by its own
// PID.
type daemon struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// startDaemon starts argv with env added, stdout and stderr to logPath.
func startDaemon(tb testing.TB, logPath string, env []string, argv ...string) *daemon {
	tb.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	d := &daemon{name: argv[0], cmd: exec.Command(argv[0], argv[1:]...), logPath: logPath, exited: make(chan struct{})}
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

// Log returns the daemon's output so far, for failure messages.
func (d *daemon) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// waitReady polls ready until it returns true; the test fails if the
// daemon exits or timeout passes first.
func (d *daemon) waitReady(tb testing.TB, timeout time.Duration, ready func() bool) {
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

// stop sends SIGTERM and, after grace, SIGKILL; it returns once the
// process is gone.
func (d *daemon) stop(grace time.Duration) {
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
