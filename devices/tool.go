package devices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// toolPath is the only PATH external tools are looked up in and run with:
// the caller's environment is tenant-influenced (hooks run with whatever
// the runtime passes) and is never used.
var toolPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// ToolError is a tool that ran and exited non-zero.
type ToolError struct {
	Tool     string
	ExitCode int
	Stderr   string // last non-empty line
}

func (e *ToolError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("%s exited with status %d", e.Tool, e.ExitCode)
	}
	return fmt.Sprintf("%s exited with status %d: %s", e.Tool, e.ExitCode, e.Stderr)
}

// LookTool finds a tool where RunTool looks for it, for callers that start
// long-running helpers themselves.
func LookTool(name string) (string, error) { return lookTool(name) }

// ToolEnv is the environment tools run with.
func ToolEnv() []string { return []string{"PATH=" + strings.Join(toolPath, ":"), "LC_ALL=C"} }

// lookTool finds a tool in toolPath.
func lookTool(name string) (string, error) {
	for _, dir := range toolPath {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s (install it)", name, strings.Join(toolPath, ":"))
}

// runTool runs name with argv (no shell), stdin from /dev/null, a minimal
// environment and a timeout; on expiry its whole process group is killed.
// It returns stdout; a non-zero exit is a *ToolError.
func runTool(ctx context.Context, timeout time.Duration, name string, args ...string) ([]byte, error) {
	return runToolStopping(ctx, timeout, unix.SIGKILL, name, args...)
}

// runToolStopping is runTool with the signal its process group gets on
// expiry. With anything but SIGKILL it waits for the tool to act on the
// signal and exit, however long that takes.
func runToolStopping(ctx context.Context, timeout time.Duration, stop unix.Signal, name string, args ...string) ([]byte, error) {
	path, err := lookTool(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The caller's deadline may come before timeout: say which one ran out.
	deadline, _ := ctx.Deadline()
	limit := time.Until(deadline).Round(10 * time.Millisecond)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = ToolEnv()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, stop) }
	if stop == unix.SIGKILL {
		cmd.WaitDelay = time.Second
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("%s: stopped (%s) after %s: %w", name, unix.SignalName(stop), limit, context.DeadlineExceeded)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.Bytes(), &ToolError{Tool: name, ExitCode: exit.ExitCode(), Stderr: lastLine(stderr.String())}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

// RunTool runs an external tool the way this package runs its own (fixed
// PATH, argv, timeout, process group killed on expiry), for the storage
// drivers that drive CLIs (rbd, ceph). A timeout wraps
// context.DeadlineExceeded.
func RunTool(ctx context.Context, timeout time.Duration, name string, args ...string) ([]byte, error) {
	return runTool(ctx, timeout, name, args...)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// exitCode returns the tool's exit status, or -1 when err is not a
// *ToolError.
func exitCode(err error) int {
	var te *ToolError
	if errors.As(err, &te) {
		return te.ExitCode
	}
	return -1
}
