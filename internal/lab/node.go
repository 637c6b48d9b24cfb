package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// Node is a private mount namespace standing in for a Kubernetes node, so
// that what a kubelet and a DaemonSet write to hard-coded host paths lands
// in a scratch directory: /etc and /opt are overlays on the host's (writes
// go to Dir), /var/lib, /var/log and /run are empty scratch directories,
// and the /proc/sys entries the kubelet sets hold the values it wants, so
// it never writes the host's. Host mounts made later do not reach it: run
// everything that must share mounts (the runtime, mooring-nri) inside.
type Node struct {
	Dir string
	*Process
}

// kubeletSysctls are the values kubelet otherwise writes to the host
// (pkg/kubelet/cm setupKernelTunables).
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// NewNode creates the namespace, held by a process the cleanup kills by
// its PID; the namespace and its mounts go with it.
func NewNode(tb testing.TB) *Node {
	tb.Helper()
	testenv.RequireRoot(tb)
	unshare := testenv.RequireTool(tb, "unshare")
	testenv.RequireTool(tb, "nsenter")
	dir, err := os.MkdirTemp("", "mooring-node-")
	if err != nil {
		tb.Fatal(err)
	}
	script := []string{"set -e"}
	for _, d := range []string{"etc", "opt"} {
		script = append(script, fmt.Sprintf("mkdir -p %[1]s/%[2]s-upper %[1]s/%[2]s-work && mount -t overlay overlay -o lowerdir=/%[2]s,upperdir=%[1]s/%[2]s-upper,workdir=%[1]s/%[2]s-work /%[2]s", dir, d))
	}
	for _, d := range []string{"/var/lib", "/var/log", "/run"} {
		script = append(script, fmt.Sprintf("mkdir -p %[1]s/host%[2]s && mount --bind %[1]s/host%[2]s %[2]s", dir, d))
	}
	script = append(script, "mkdir -p "+dir+"/sysctl")
	for key, value := range kubeletSysctls {
		f := filepath.Join(dir, "sysctl", strings.ReplaceAll(key, "/", "."))
		script = append(script, fmt.Sprintf("if [ -e /proc/sys/%[1]s ]; then echo %[2]s > %[3]s && mount --bind %[3]s /proc/sys/%[1]s; fi", key, value, f))
	}
	script = append(script, "echo node-ready", "exec sleep 2147483647")
	n := &Node{Dir: dir}
	n.Process = StartProcess(tb, filepath.Join(dir, "node.log"), nil,
		unshare, "--mount", "--propagation", "private", "--", "sh", "-c", strings.Join(script, "\n"))
	tb.Cleanup(func() {
		n.Process.Stop(5 * time.Second)
		os.RemoveAll(dir)
	})
	n.WaitReady(tb, 10*time.Second, func() bool { return strings.Contains(n.Log(), "node-ready") })
	return n
}

// PID is the namespace holder's PID, as `nsenter --target` wants it.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Enter returns argv run inside the node's mount namespace.
func (n *Node) Enter(argv ...string) []string {
	return append([]string{"nsenter", fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.PID()), "--"}, argv...)
}

// Run runs argv inside the node and returns its output.
func (n *Node) Run(tb testing.TB, argv ...string) (stdout, stderr string, err error) {
	tb.Helper()
	full := n.Enter(argv...)
	return RunCmd(tb, 2*time.Minute, nil, full[0], full[1:]...)
}
