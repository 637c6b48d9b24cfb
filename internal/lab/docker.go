package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// Dockerd is a docker daemon (Debian docker.io 20.10) started by hand with
// every path in a scratch directory, no networking, cgroupfs, and
// mooring-runtime registered as the runtime "mooring".
type Dockerd struct {
	Dir    string
	Image  string
	docker string
	host   string
	env    []string
	tb     testing.TB
}

// NewDockerd starts dockerd with env (e.g. MOORING_CONFIG for the shim,
// inherited by containerd and its shims) and imports the busybox rootfs.
// Its cleanup removes every container and stops dockerd by its PID.
func NewDockerd(tb testing.TB, shim string, env []string) *Dockerd {
	tb.Helper()
	dockerd, ok := testenv.LookTool("dockerd")
	testenv.Require(tb, ok, "dockerd (Debian docker.io; run make prereqs)")
	docker := "/usr/bin/docker" // the client of the same release
	_, err := os.Stat(docker)
	testenv.Require(tb, err == nil, docker+" (Debian docker.io)")
	dir, err := os.MkdirTemp("", "mooring-docker-")
	if err != nil {
		tb.Fatal(err)
	}
	d := &Dockerd{Dir: dir, Image: "mooring-busybox:lab", docker: docker, host: "unix://" + filepath.Join(dir, "docker.sock"), tb: tb}
	d.env = append([]string{"DOCKER_HOST=" + d.host}, env...)
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(dockerd,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", d.host,
		"--iptables=false", "--ip-masq=false", "--bridge=none", "--userland-proxy=false",
		"--storage-driver", "vfs", "--exec-opt", "native.cgroupdriver=cgroupfs",
		"--add-runtime", "mooring="+shim)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		if out, _, _ := d.Docker("ps", "-aq"); out != "" {
			d.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		mounts := MountsUnder(dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			exec.Command("umount", "-l", mounts[i]).Run()
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, _, err := d.Docker("version"); err == nil {
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile.Name())
			tb.Fatalf("dockerd exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			tb.Fatalf("dockerd did not answer in 60s:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	importRootfs(tb, d.env, docker, d.Image)
	return d
}

// Docker runs the docker client against this daemon.
func (d *Dockerd) Docker(args ...string) (stdout, stderr string, err error) {
	return RunCmd(d.tb, 2*time.Minute, d.env, d.docker, args...)
}
