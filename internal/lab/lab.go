package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// shared holds what is built once per test process and removed by Main.
var shared struct {
	once    sync.Once
	dir     string
	bins    Bins
	rootfs  string
	err     error
	rootErr error
	rootOne sync.Once
}

// Main runs the tests and removes what the harness built once for them.
// Use it from TestMain.
// It also fails the run if the tests touched the host's default state
// directory, which every test must leave alone.
func Main(m *testing.M) int {
	var absent []string
	for _, p := range hostPaths {
		if _, err := os.Stat(p); err != nil {
			absent = append(absent, p)
		}
	}
	code := m.Run()
	if err := stopSharedCeph(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stop the test ceph cluster: %v\n", err)
		code = 1
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	for _, p := range absent {
		if _, err := os.Stat(p); err == nil {
			fmt.Fprintf(os.Stderr, "FAIL: the tests created %s: some mooring process ran without the scratch config\n", p)
			code = 1
		}
	}
	return code
}

// hostPaths are the default config's state, staging and log paths.
var hostPaths = []string{"/var/lib/mooring", "/run/mooring", "/var/log/mooring.log"}

func sharedDir() (string, error) {
	if shared.dir == "" {
		d, err := os.MkdirTemp("", "mooring-lab-")
		if err != nil {
			return "", err
		}
		shared.dir = d
	}
	return shared.dir, nil
}

// Bins are mooring's binaries, built from this checkout.
type Bins struct {
	Mooring string // cmd/mooring (CLI and hook)
	Runtime string // cmd/mooring-runtime (shim), when it exists
	NRI     string // cmd/mooring-nri, when it exists
}

// Binaries builds mooring's commands once per test process (static,
// CGO_ENABLED=0, as shipped).
func Binaries(tb testing.TB) Bins {
	tb.Helper()
	testenv.RequireRoot(tb)
	shared.once.Do(func() {
		dir, err := sharedDir()
		if err != nil {
			shared.err = err
			return
		}
		out := filepath.Join(dir, "bin")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out+"/", "./cmd/...")
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			shared.err = fmt.Errorf("go build ./cmd/...: %w\n%s", err, b)
			return
		}
		shared.bins = Bins{Mooring: filepath.Join(out, "mooring")}
		for name, field := range map[string]*string{"mooring-runtime": &shared.bins.Runtime, "mooring-nri": &shared.bins.NRI} {
			if _, err := os.Stat(filepath.Join(out, name)); err == nil {
				*field = filepath.Join(out, name)
			}
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.bins
}

// Runc returns the current runc that `make tools` installs.
func Runc(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(testenv.ToolsDir(), "runc")
	_, err := os.Stat(p)
	testenv.Require(tb, err == nil, "a current runc at "+p+" (run make tools)")
	return p
}

// Rootfs returns a busybox root filesystem built once per process from
// Debian's busybox-static. Treat it as read-only; NewBundle copies it.
func Rootfs(tb testing.TB) string {
	tb.Helper()
	_, err := os.Stat("/bin/busybox")
	testenv.Require(tb, err == nil, "/bin/busybox (Debian busybox-static; run make prereqs)")
	shared.rootOne.Do(func() {
		dir, err := sharedDir()
		if err != nil {
			shared.rootErr = err
			return
		}
		shared.rootfs = filepath.Join(dir, "rootfs")
		shared.rootErr = buildRootfs(shared.rootfs)
	})
	if shared.rootErr != nil {
		tb.Fatal(shared.rootErr)
	}
	return shared.rootfs
}

func buildRootfs(dir string) error {
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "mnt", "run", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if out, err := exec.Command("cp", "/bin/busybox", filepath.Join(dir, "bin", "busybox")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy busybox: %w: %s", err, out)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// RunCmd runs a program with a timeout and returns its output.
func RunCmd(tb testing.TB, timeout time.Duration, env []string, name string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %s", name, strings.Join(args, " "), timeout)
	}
	return o.String(), e.String(), err
}
