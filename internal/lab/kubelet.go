package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testenv"
)

// KubeletNodeName is the node name the test kubelet uses; a static pod
// named N runs as N-<KubeletNodeName>.
const KubeletNodeName = "mooring-lab"

// Kubelet is a standalone kubelet (from `make tools`; no API server, no
// kubeconfig) running the static pods in ManifestDir against a test
// containerd, inside node's mount namespace (see Node for why), with
// cgroupfs under its own cgroup root and host-network pods (no CNI).
type Kubelet struct {
	Dir         string
	ManifestDir string
	cgroupRoot  string
	*Process
	tb testing.TB
}

// NewKubelet starts a kubelet for ctrd (which runs in node). Its cleanup
// stops it by its PID, removes every pod from containerd and the cgroups
// it made.
func NewKubelet(tb testing.TB, node *Node, ctrd *Containerd) *Kubelet {
	tb.Helper()
	bin := filepath.Join(testenv.ToolsDir(), "kubelet")
	_, err := os.Stat(bin)
	testenv.Require(tb, err == nil, bin+" (run make tools)")
	dir, err := os.MkdirTemp("", "mooring-kubelet-")
	if err != nil {
		tb.Fatal(err)
	}
	k := &Kubelet{Dir: dir, ManifestDir: filepath.Join(dir, "manifests"), cgroupRoot: "/" + filepath.Base(dir), tb: tb}
	for _, d := range []string{"manifests", "root", "certs", "pod-logs", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		if k.Process != nil {
			k.Process.Stop(20 * time.Second)
		}
		removeAllPods(ctrd.Socket)
		k.removeCgroups()
		os.RemoveAll(dir)
	})
	if err := k.makeCgroupRoot(); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %[1]q
fileCheckFrequency: 1s
syncFrequency: 5s
containerRuntimeEndpoint: unix://%[2]s
imageServiceEndpoint: unix://%[2]s
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: %[3]q
failCgroupV1: false
failSwapOn: false
enableServer: false
readOnlyPort: 0
healthzPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
# This host forbids lowering oom_score_adj and caps RLIMIT_NOFILE at 20000.
oomScoreAdj: 0
maxOpenFiles: 16384
makeIPTablesUtilChains: false
podLogsDir: %[4]q
volumePluginDir: %[5]q
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, k.ManifestDir, ctrd.Socket, k.cgroupRoot, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"))
	confPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	k.Process = StartProcess(tb, filepath.Join(dir, "kubelet.log"), nil, node.Enter(bin,
		"--config", confPath, "--root-dir", filepath.Join(dir, "root"), "--cert-dir", filepath.Join(dir, "certs"),
		"--hostname-override", KubeletNodeName, "-v", "2")...)
	return k
}

// AddStaticPod writes a pod manifest; the kubelet starts the pod within
// about a second (fileCheckFrequency).
func (k *Kubelet) AddStaticPod(name, manifest string) {
	k.tb.Helper()
	if err := os.WriteFile(filepath.Join(k.ManifestDir, name+".yaml"), []byte(manifest), 0o600); err != nil {
		k.tb.Fatal(err)
	}
}

// RemoveStaticPod removes a manifest; the kubelet stops the pod after its
// grace period and removes its sandbox at the next container GC (every
// minute).
func (k *Kubelet) RemoveStaticPod(name string) {
	k.tb.Helper()
	if err := os.Remove(filepath.Join(k.ManifestDir, name+".yaml")); err != nil {
		k.tb.Fatal(err)
	}
}

// v1Hierarchies lists the cgroup v1 hierarchies (the host is "hybrid").
func v1Hierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if e.IsDir() && e.Name() != "unified" {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// makeCgroupRoot creates the kubelet's cgroupRoot in every v1 hierarchy,
// which it requires; cpuset needs its cpus and mems filled in first.
func (k *Kubelet) makeCgroupRoot() error {
	for _, h := range v1Hierarchies() {
		d := filepath.Join(h, k.cgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("cgroup root: %w", err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(h, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(d, f), v, 0o644)
			}
			if err != nil {
				return fmt.Errorf("cgroup root %s: %w", f, err)
			}
		}
	}
	return nil
}

// removeCgroups removes the cgroup root and what the kubelet and runc made
// under it, deepest first; they are empty once the pods are gone.
func (k *Kubelet) removeCgroups() {
	for _, h := range v1Hierarchies() {
		var dirs []string
		filepath.WalkDir(filepath.Join(h, k.cgroupRoot), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
		for _, d := range dirs {
			os.Remove(d)
		}
	}
}
