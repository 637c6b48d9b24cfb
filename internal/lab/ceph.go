package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// cephCallTimeout bounds every ceph/rbd call the harness makes: without a
// mgr some commands (ceph pg stat, ceph osd df) never answer.
const cephCallTimeout = 20 * time.Second

// Ceph is a throwaway single-node Ceph cluster: one mon and one memstore
// OSD on 127.0.0.1, auth none, pool size 1, no mgr, every path (config,
// data, logs, sockets, pid files) under Dir. Its daemons run in the
// foreground as children of the test process, in their own process group,
// killed with it if it dies; Stop ends them by PID.
type Ceph struct {
	Dir  string
	Conf string // ceph.conf for every client (-c)
	Pool string // the RADOS pool, initialised for RBD
	// Up and Down are how long Start and Stop took.
	Up, Down time.Duration

	mon, osd *daemon
}

// daemon is one ceph daemon the harness started.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// StartCeph creates and starts a cluster under dir (which must be empty or
// absent) with an RBD pool named pool. On failure nothing it started is
// left running.
func StartCeph(ctx context.Context, dir, pool string) (c *Ceph, err error) {
	t0 := time.Now()
	for _, tool := range []string{"ceph-mon", "ceph-osd", "ceph", "rbd", "monmaptool", "ceph-authtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("start ceph: %s not found (run scripts/prereqs.sh)", tool)
		}
	}
	c = &Ceph{Dir: dir, Conf: filepath.Join(dir, "ceph.conf"), Pool: pool}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("start ceph in %s: %w", dir, err), c.stopDaemons())
		}
	}()
	for _, d := range []string{"run", "log", "crash"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return c, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return c, err
	}
	fsid := uuid.NewString()
	monAddr := fmt.Sprintf("[v2:127.0.0.1:%d,v1:127.0.0.1:%d]", ports[0], ports[1])
	if err := os.WriteFile(c.Conf, []byte(cephConf(dir, fsid, monAddr)), 0o600); err != nil {
		return c, err
	}
	keyring := filepath.Join(dir, "keyring")
	steps := [][]string{
		{"ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"},
		{"ceph-authtool", keyring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *"},
		{"monmaptool", "--create", "--fsid", fsid, "--addv", "a", monAddr, filepath.Join(dir, "monmap")},
		{"ceph-mon", "-c", c.Conf, "--mkfs", "-i", "a", "--monmap", filepath.Join(dir, "monmap"), "--keyring", keyring},
	}
	for _, s := range steps {
		if _, err := devices.RunTool(ctx, cephCallTimeout, s[0], s[1:]...); err != nil {
			return c, err
		}
	}
	if c.mon, err = c.startDaemon("ceph-mon", "-i", "a"); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, 30*time.Second, "mon quorum", func(ctx context.Context) (bool, error) {
		_, err := c.Ceph(ctx, "mon", "stat")
		return err == nil, nil
	}); err != nil {
		return c, err
	}

	osdUUID := uuid.NewString()
	out, err := c.Ceph(ctx, "osd", "new", osdUUID)
	if err != nil {
		return c, err
	}
	id := strings.TrimSpace(string(out))
	if _, err := strconv.Atoi(id); err != nil {
		return c, fmt.Errorf("ceph osd new answered %q, not an OSD id", id)
	}
	if err := os.MkdirAll(filepath.Join(dir, "osd."+id), 0o700); err != nil {
		return c, err
	}
	osdKeyring := filepath.Join(dir, "osd."+id, "keyring")
	if _, err := devices.RunTool(ctx, 60*time.Second, "ceph-osd", "-c", c.Conf, "-i", id, "--mkfs", "--osd-uuid", osdUUID, "--keyring", osdKeyring); err != nil {
		return c, err
	}
	if c.osd, err = c.startDaemon("ceph-osd", "-i", id, "--keyring", osdKeyring); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, 60*time.Second, "the OSD up", c.osdUp); err != nil {
		return c, err
	}
	if _, err := c.Ceph(ctx, "osd", "pool", "create", pool, "8", "8", "replicated"); err != nil {
		return c, err
	}
	if _, err := devices.RunTool(ctx, 60*time.Second, "rbd", "-c", c.Conf, "pool", "init", pool); err != nil {
		return c, err
	}
	c.Up = time.Since(t0)
	return c, nil
}

// cephConf is the cluster's config: everything under dir, small thread
// counts for a 2-core machine, no rbd cache (every node must read what the
// last writer wrote).
func cephConf(dir, fsid, monAddr string) string {
	return fmt.Sprintf(`[global]
fsid = %[2]s
mon host = %[3]s
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
keyring = %[1]s/keyring
run dir = %[1]s/run
admin socket = %[1]s/run/$name.asok
log file = %[1]s/log/$name.log
crash dir = %[1]s/crash
mon data = %[1]s/mon.$id
osd data = %[1]s/osd.$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 0
osd op num shards = 2
osd op num threads per shard = 1
ms async op threads = 2
mon warn on insecure global id reclaim allowed = false
[client]
rbd cache = false
log file = %[1]s/log/$name.$pid.log
admin socket = %[1]s/run/$name.$pid.asok
`, dir, fsid, monAddr)
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago,
// so that clusters of concurrent test processes do not collide.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startDaemon runs a daemon in the foreground, in its own process group,
// killed if the test process dies first.
func (c *Ceph) startDaemon(name string, args ...string) (*daemon, error) {
	logf, err := os.OpenFile(filepath.Join(c.Dir, "log", name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(name, append([]string{"-f", "-c", c.Conf}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	return d, nil
}

// stop ends the daemon by its PID: SIGCONT (it may be paused), SIGTERM,
// then SIGKILL after 10 s.
func (d *daemon) stop() error {
	if d == nil {
		return nil
	}
	pid := d.cmd.Process.Pid
	unix.Kill(pid, unix.SIGCONT)
	unix.Kill(pid, unix.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	unix.Kill(pid, unix.SIGKILL)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", d.cmd.Path, pid)
	}
}

func (c *Ceph) stopDaemons() error {
	err := c.osd.stop()
	return errors.Join(err, c.mon.stop())
}

// Stop ends the daemons by PID and removes Dir.
func (c *Ceph) Stop() error {
	t0 := time.Now()
	err := c.stopDaemons()
	err = errors.Join(err, os.RemoveAll(c.Dir))
	c.Down = time.Since(t0)
	return err
}

// PauseOSD stops the OSD (SIGSTOP): every client I/O blocks until
// ResumeOSD.
func (c *Ceph) PauseOSD() error {
	return unix.Kill(c.osd.cmd.Process.Pid, unix.SIGSTOP)
}

// ResumeOSD continues a paused OSD.
func (c *Ceph) ResumeOSD() error {
	return unix.Kill(c.osd.cmd.Process.Pid, unix.SIGCONT)
}

// ClientID is the Ceph client id (client.<id>) a test node uses: with auth
// none any id works, and distinct ids make the nodes' clients tell apart in
// `rbd status` and the logs.
func (c *Ceph) ClientID(node string) string { return "mooring-" + node }

// Ceph runs the ceph CLI as client.admin against this cluster, bounded.
func (c *Ceph) Ceph(ctx context.Context, args ...string) ([]byte, error) {
	return devices.RunTool(ctx, cephCallTimeout, "ceph", append([]string{"-c", c.Conf, "--connect-timeout", "10"}, args...)...)
}

func (c *Ceph) osdUp(ctx context.Context) (bool, error) {
	out, err := c.Ceph(ctx, "osd", "dump", "--format", "json")
	if err != nil {
		return false, nil
	}
	var dump struct {
		OSDs []struct {
			Up int `json:"up"`
		} `json:"osds"`
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		return false, fmt.Errorf("ceph osd dump: %w", err)
	}
	return len(dump.OSDs) > 0 && dump.OSDs[0].Up == 1, nil
}

// waitFor polls ok until it is true, fails, or limit passes.
func (c *Ceph) waitFor(ctx context.Context, limit time.Duration, what string, ok func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		done, err := ok(ctx)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (logs in %s)", what, ctx.Err(), filepath.Join(c.Dir, "log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sharedCeph is the one cluster of a test process.
var sharedCeph struct {
	once sync.Once
	c    *Ceph
	err  error
}

// SharedCeph returns the test process's cluster, started on first use
// (pool "rbd") and stopped by Main, so a package's tests share one cluster.
// Tests must leave it as they found it (their images removed, the OSD
// running).
func SharedCeph(tb testing.TB) *Ceph {
	tb.Helper()
	testenv.RequireRoot(tb)
	_, err := exec.LookPath("ceph-osd")
	testenv.Require(tb, err == nil, "ceph-mon, ceph-osd, ceph-common (run scripts/prereqs.sh)")
	sharedCeph.once.Do(func() {
		dir, err := sharedDir()
		if err != nil {
			sharedCeph.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sharedCeph.c, sharedCeph.err = StartCeph(ctx, filepath.Join(dir, "ceph"), "rbd")
	})
	if sharedCeph.err != nil {
		tb.Fatal(sharedCeph.err)
	}
	return sharedCeph.c
}

// stopSharedCeph stops the shared cluster, if one was started, and says
// what it cost.
func stopSharedCeph() error {
	c := sharedCeph.c
	if c == nil {
		return nil
	}
	err := c.Stop()
	fmt.Fprintf(os.Stderr, "lab: ceph cluster up in %s, down in %s\n", c.Up.Round(time.Millisecond), c.Down.Round(time.Millisecond))
	return err
}
