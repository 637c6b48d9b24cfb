package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// Test images, imported into containerd's k8s.io namespace.
const (
	PauseImage   = "docker.io/library/mooring-pause:lab"
	BusyboxImage = "docker.io/library/mooring-busybox:lab"
)

// ContainerdOptions tune a test containerd.
type ContainerdOptions struct {
	// BinaryName replaces runc (e.g. with mooring-runtime).
	BinaryName string
	// PodAnnotations are more pod_annotations patterns containerd copies
	// into the spec (besides mooring's keys).
	PodAnnotations []string
	// RequestTimeout is NRI's plugin_request_timeout (default 2s).
	RequestTimeout time.Duration
	// Plugins are pre-registered NRI plugins containerd starts itself:
	// file name (<idx>-<name>) to binary; PluginConfigs their config files.
	Plugins       map[string]string
	PluginConfigs map[string]string
	// RequiredPlugins are NRI plugins without which CreateContainer fails.
	RequiredPlugins []string
	// NRISocket replaces the scratch NRI socket (e.g. with the
	// deployment's path inside Node).
	NRISocket string
	// Node runs containerd inside a Node's mount namespace.
	Node *Node
}

// Containerd is a containerd 2.x (from `make tools`) with CRI and NRI,
// every path in a scratch directory.
type Containerd struct {
	Dir       string
	Socket    string // CRI/gRPC socket
	NRISocket string
	PluginDir string // NRI plugin_path
	RuncRoot  string
	ctr       string
	*Process
	tb testing.TB
}

// NewContainerd starts containerd and imports the pause and busybox images.
// Its cleanup stops every pod, stops containerd by its PID and unmounts
// what it left.
func NewContainerd(tb testing.TB, opts ContainerdOptions) *Containerd {
	tb.Helper()
	testenv.RequireRoot(tb)
	bin := filepath.Join(testenv.ToolsDir(), "containerd")
	_, err := os.Stat(bin)
	testenv.Require(tb, err == nil, bin+" (run make tools)")
	runc := Runc(tb)
	dir, err := os.MkdirTemp("", "mooring-ctrd-") // short: socket paths
	if err != nil {
		tb.Fatal(err)
	}
	c := &Containerd{
		Dir: dir, Socket: filepath.Join(dir, "c.sock"), NRISocket: filepath.Join(dir, "nri.sock"),
		PluginDir: filepath.Join(dir, "nri-plugins"), RuncRoot: filepath.Join(dir, "runc"),
		ctr: filepath.Join(testenv.ToolsDir(), "ctr"), tb: tb,
	}
	for _, d := range []string{c.PluginDir, filepath.Join(dir, "nri-conf"), filepath.Join(dir, "s")} {
		os.MkdirAll(d, 0o700)
	}
	for name, path := range opts.Plugins {
		if err := os.Symlink(path, filepath.Join(c.PluginDir, name)); err != nil {
			tb.Fatal(err)
		}
	}
	for name, content := range opts.PluginConfigs {
		if err := os.WriteFile(filepath.Join(dir, "nri-conf", name+".conf"), []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	if opts.NRISocket != "" {
		c.NRISocket = opts.NRISocket
	}
	binary := runc
	if opts.BinaryName != "" {
		binary = opts.BinaryName
	}
	timeout := opts.RequestTimeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	conf := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
imports = []
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = %[5]q
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = %[6]q
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = %[7]q
  plugin_path = %[8]q
  plugin_config_path = %[9]q
  plugin_registration_timeout = "5s"
  plugin_request_timeout = %[12]q
  disable_connections = false
  [plugins.'io.containerd.nri.v1.nri'.default_validator]
    enable = %[14]t
    required_plugins = %[15]s
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      pod_annotations = %[16]s
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[10]q
        Root = %[11]q
        SystemdCgroup = false
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = %[13]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(dir, "debug.sock"),
		filepath.Join(dir, "s"), c.NRISocket, c.PluginDir, filepath.Join(dir, "nri-conf"), binary, c.RuncRoot,
		timeout.String(), PauseImage, len(opts.RequiredPlugins) > 0, tomlStrings(opts.RequiredPlugins),
		tomlStrings(append([]string{"volumes.mooring.dev", "volumes.mooring.dev/*"}, opts.PodAnnotations...)))
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	// containerd finds containerd-shim-runc-v2 in PATH: ours, not Debian's.
	argv := []string{bin, "--config", confPath}
	if opts.Node != nil {
		argv = opts.Node.Enter(argv...)
	}
	c.Process = StartProcess(tb, filepath.Join(dir, "containerd.log"), []string{"PATH=" + testenv.ToolsDir() + ":" + os.Getenv("PATH")}, argv...)
	tb.Cleanup(c.cleanup)
	c.WaitReady(tb, 60*time.Second, func() bool { _, _, err := c.Ctr("version"); return err == nil })
	c.importImages()
	return c
}

// tomlStrings writes a TOML array of strings.
func tomlStrings(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// CRI returns a CRI client for this containerd, closed by the test's
// cleanup.
func (c *Containerd) CRI() *CRI { return dialTestCRI(c.tb, c.Socket, filepath.Join(c.Dir, "logs")) }

// Ctr runs ctr against this containerd in the k8s.io namespace.
func (c *Containerd) Ctr(args ...string) (stdout, stderr string, err error) {
	return RunCmd(c.tb, 2*time.Minute, nil, c.ctr, append([]string{"--address", c.Socket, "--namespace", "k8s.io"}, args...)...)
}

func (c *Containerd) importImages() {
	tb := c.tb
	dir := tb.TempDir()
	pauseRoot := filepath.Join(dir, "pause-rootfs")
	os.MkdirAll(pauseRoot, 0o755)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(pauseRoot, "pause"), "./internal/lab/pause")
	build.Dir = testenv.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build pause: %v\n%s", err, out)
	}
	c.ImportImage(PauseImage, pauseRoot, "/pause")
	c.ImportImage(BusyboxImage, Rootfs(tb), "sh")
}

// ImportImage imports rootfs as a one-layer image named name with cmd into
// the k8s.io namespace.
func (c *Containerd) ImportImage(name, rootfs string, cmd ...string) {
	tb := c.tb
	tb.Helper()
	tarPath := filepath.Join(tb.TempDir(), "image.tar")
	if err := OCIImageTar(tarPath, rootfs, name, cmd); err != nil {
		tb.Fatal(err)
	}
	if _, stderr, err := c.Ctr("images", "import", tarPath); err != nil {
		tb.Fatalf("ctr images import %s: %v\n%s", name, err, stderr)
	}
}

// Stop stops containerd by its PID (SIGTERM, then SIGKILL after 20 s).
func (c *Containerd) Stop() { c.Process.Stop(20 * time.Second) }

func (c *Containerd) cleanup() {
	removeAllPods(c.Socket)
	c.Stop()
	// Shims outlive containerd; stop the ones it started for us.
	out, _ := exec.Command("pgrep", "-f", "containerd-shim-runc-v2 -namespace k8s.io -address "+c.Socket).Output()
	for _, pid := range strings.Fields(string(out)) {
		exec.Command("kill", "-9", pid).Run()
	}
	mounts := MountsUnder(c.Dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", mounts[i]).Run()
	}
	os.RemoveAll(c.Dir)
}
