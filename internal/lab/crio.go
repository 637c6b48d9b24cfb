package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// CRIOOptions tune a test CRI-O.
type CRIOOptions struct {
	// HooksDir is CRI-O's hooks_dir (empty: none).
	HooksDir string
	// NRI enables NRI; mooring-nri then connects to NRISocket.
	NRI bool
}

// CRIO is a CRI-O (from `make tools`) with every path in a scratch
// directory: its own root, runroot, socket, exits and attach dirs, conmon
// from Debian and the current runc, cgroupfs, no CNI (host network pods).
// Its image store is shared with a scratch podman, which imports the
// images: there is no registry here.
type CRIO struct {
	Dir       string
	Socket    string
	NRISocket string
	// Image is the busybox image, as podman named it.
	Image string
	*Process
	tb testing.TB
}

// NewCRIO starts CRI-O. Its cleanup removes every pod, stops CRI-O by its
// PID and unmounts what it left.
func NewCRIO(tb testing.TB, opts CRIOOptions) *CRIO {
	tb.Helper()
	testenv.RequireRoot(tb)
	bin := filepath.Join(testenv.ToolsDir(), "crio")
	pinns := filepath.Join(testenv.ToolsDir(), "pinns")
	for _, p := range []string{bin, pinns} {
		_, err := os.Stat(p)
		testenv.Require(tb, err == nil, p+" (run make tools)")
	}
	conmon, ok := testenv.LookTool("conmon")
	testenv.Require(tb, ok, "conmon (run make prereqs)")
	runc := Runc(tb)
	// podman fills the image store CRI-O then uses (the two share
	// containers/storage by design); its cleanup runs after CRI-O's.
	store := NewPodman(tb, runc, tb.TempDir())
	dir, err := os.MkdirTemp("", "mooring-crio-") // short: socket paths
	if err != nil {
		tb.Fatal(err)
	}
	c := &CRIO{Dir: dir, Socket: filepath.Join(dir, "crio.sock"), NRISocket: filepath.Join(dir, "nri.sock"), Image: store.Image, tb: tb}
	for _, d := range []string{"conf.d", "cni", "cni-bin", "nri-plugins", "nri-conf", "logs", "ns", "exits", "attach"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		tb.Fatal(err)
	}
	var hooks string
	if opts.HooksDir != "" {
		hooks = fmt.Sprintf("%q", opts.HooksDir)
	}
	conf := fmt.Sprintf(`[crio]
root = %[1]q
runroot = %[2]q
storage_driver = "vfs"
log_dir = %[3]q
version_file = %[4]q
version_file_persist = %[5]q
clean_shutdown_file = %[6]q
[crio.api]
listen = %[7]q
stream_address = "127.0.0.1"
stream_port = "0"
[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
hooks_dir = [%[8]s]
pinns_path = %[9]q
namespaces_dir = %[10]q
container_exits_dir = %[11]q
container_attach_socket_dir = %[12]q
irqbalance_config_file = ""
irqbalance_config_restore_file = "disable"
[crio.runtime.runtimes.runc]
runtime_path = %[13]q
runtime_type = "oci"
runtime_root = %[14]q
monitor_path = %[15]q
monitor_cgroup = "pod"
[crio.image]
pause_image = %[16]q
signature_policy = %[17]q
[crio.network]
network_dir = %[18]q
plugin_dirs = [%[19]q]
[crio.nri]
enable_nri = %[20]t
nri_listen = %[21]q
nri_plugin_dir = %[22]q
nri_plugin_config_dir = %[23]q
nri_plugin_registration_timeout = "5s"
nri_plugin_request_timeout = "2s"
nri_disable_connections = false
`, filepath.Join(store.Dir, "graph"), filepath.Join(store.Dir, "run"), filepath.Join(dir, "logs"),
		filepath.Join(dir, "version"), filepath.Join(dir, "version-persist"), filepath.Join(dir, "clean.shutdown"),
		c.Socket, hooks, pinns, filepath.Join(dir, "ns"), filepath.Join(dir, "exits"), filepath.Join(dir, "attach"),
		runc, filepath.Join(dir, "runc"), conmon, c.Image, policy, filepath.Join(dir, "cni"), filepath.Join(dir, "cni-bin"),
		opts.NRI, c.NRISocket, filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf"))
	confPath := filepath.Join(dir, "crio.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	c.Process = StartProcess(tb, filepath.Join(dir, "crio.log"), nil,
		bin, "--config", confPath, "--config-dir", filepath.Join(dir, "conf.d"), "--log-level", "info")
	tb.Cleanup(c.cleanup)
	c.WaitReady(tb, 60*time.Second, func() bool {
		_, err := os.Stat(c.Socket)
		return err == nil
	})
	return c
}

// CRI returns a CRI client for this CRI-O, closed by the test's cleanup.
func (c *CRIO) CRI() *CRI {
	client := dialTestCRI(c.tb, c.Socket, filepath.Join(c.Dir, "pod-logs"))
	client.Image = c.Image
	return client
}

func (c *CRIO) cleanup() {
	removeAllPods(c.Socket)
	c.Process.Stop(20 * time.Second)
	mounts := MountsUnder(c.Dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", mounts[i]).Run()
	}
	os.RemoveAll(c.Dir)
}
