package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// daemonSet is what deploy/kubernetes/mooring-nri.yaml puts on a node.
type daemonSet struct {
	command []string          // the mooring-nri container's command
	config  string            // the ConfigMap's config.toml
	hostDir map[string]string // volume name to hostPath
}

// readDaemonSet reads the deployment the docs tell users to apply.
func readDaemonSet(t *testing.T) daemonSet {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "kubernetes", "mooring-nri.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ds := daemonSet{hostDir: map[string]string{}}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj struct {
			Kind string
			Data map[string]string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name    string
							Command []string
						}
						Volumes []struct {
							Name     string
							HostPath struct{ Path string }
						}
					}
				}
			}
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("mooring-nri.yaml: %v", err)
		}
		switch obj.Kind {
		case "ConfigMap":
			ds.config = obj.Data["config.toml"]
		case "DaemonSet":
			for _, c := range obj.Spec.Template.Spec.Containers {
				if c.Name == "mooring-nri" {
					ds.command = c.Command
				}
			}
			for _, v := range obj.Spec.Template.Spec.Volumes {
				if v.HostPath.Path != "" {
					ds.hostDir[v.Name] = v.HostPath.Path
				}
			}
		}
	}
	if len(ds.command) == 0 || ds.config == "" || ds.hostDir["bin"] == "" || ds.hostDir["etc"] == "" {
		t.Fatalf("mooring-nri.yaml: no mooring-nri command, config.toml or bin/etc hostPath volumes")
	}
	return ds
}

// flagValue returns the value after flag in argv.
func flagValue(t *testing.T, argv []string, flag string) string {
	t.Helper()
	for i, a := range argv[:len(argv)-1] {
		if a == flag {
			return argv[i+1]
		}
	}
	t.Fatalf("%q has no %s", argv, flag)
	return ""
}

// kubeNode is a node as the docs set it up: containerd 2.4 with mooring as
// a required NRI plugin, mooring-nri running from the DaemonSet's command
// line with the ConfigMap's config, and a standalone kubelet, all in one
// private mount namespace (lab.Node).
type kubeNode struct {
	t       *testing.T
	node    *lab.Node
	cri     *lab.CRI
	kubelet *lab.Kubelet
	plugin  *lab.Process
	mooring string
	config  string
}

func newKubeNode(t *testing.T) *kubeNode {
	bins := lab.Binaries(t)
	ds := readDaemonSet(t)
	k := &kubeNode{t: t, node: lab.NewNode(t), mooring: bins.Mooring}
	// What the init container does: the binaries (mooring-nri and the
	// mooring its target check hook runs) and the config onto the host, in
	// the hostPath directories the DaemonSet mounts.
	k.config = filepath.Join(ds.hostDir["etc"], "config.toml")
	conf := filepath.Join(k.node.Dir, "configmap.toml")
	if err := os.WriteFile(conf, []byte(ds.config), 0o600); err != nil {
		t.Fatal(err)
	}
	install := "mkdir -p " + ds.hostDir["bin"] + " " + ds.hostDir["etc"] +
		" && cp " + bins.NRI + " " + bins.Mooring + " " + ds.hostDir["bin"] + "/ && cp " + conf + " " + k.config
	if _, stderr, err := k.node.Run(t, "sh", "-c", install); err != nil {
		t.Fatalf("install into the node: %v\n%s", err, stderr)
	}
	ctrd := lab.NewContainerd(t, lab.ContainerdOptions{
		Node: k.node, NRISocket: flagValue(t, ds.command, "--socket"), RequiredPlugins: []string{"mooring"},
	})
	k.cri = ctrd.CRI()
	// The DaemonSet's command as written, except that nsenter's target is
	// this test's node rather than the host's PID 1.
	argv := append([]string(nil), ds.command...)
	for i := range argv[:len(argv)-1] {
		if argv[i] == "--target" {
			argv[i+1] = strconv.Itoa(k.node.PID())
		}
	}
	k.plugin = lab.StartProcess(t, filepath.Join(k.node.Dir, "mooring-nri.log"), nil, argv...)
	t.Cleanup(func() { k.plugin.Stop(10 * time.Second) })
	k.plugin.WaitReady(t, 20*time.Second, func() bool { return strings.Contains(k.plugin.Log(), `"msg":"synchronized"`) })
	k.kubelet = lab.NewKubelet(t, k.node, ctrd)
	return k
}

// claims returns how many claims mooring (CLI, in the node, with the
// DaemonSet's config) lists on volume.
func (k *kubeNode) claims(volume string) int {
	k.t.Helper()
	out, stderr, err := k.node.Run(k.t, k.mooring, "--config", k.config, "--json", "attachments", "ls")
	if err != nil {
		k.t.Fatalf("mooring attachments ls: %v\n%s", err, stderr)
	}
	var atts []struct{ Volume string }
	if err := json.Unmarshal([]byte(out), &atts); err != nil {
		k.t.Fatalf("mooring attachments ls --json: %v\n%s", err, out)
	}
	n := 0
	for _, a := range atts {
		if a.Volume == volume {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to timeout; what names it in the failure.
func (k *kubeNode) waitFor(what string, timeout time.Duration, cond func() bool) {
	k.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			k.t.Fatalf("%s: not within %s\nkubelet log (tail):\n%s\nmooring-nri log:\n%s", what, timeout, tail(k.kubelet.Log(), 40), k.plugin.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// running waits for the pod's container to run with the given restart
// attempt and returns its ID.
func (k *kubeNode) running(pod, container string, attempt uint32) string {
	k.t.Helper()
	var id string
	k.waitFor(pod+"/"+container+" running, attempt "+strconv.Itoa(int(attempt)), 2*time.Minute, func() bool {
		cs, err := k.cri.Containers(map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.container.name": container})
		if err != nil {
			k.t.Fatal(err)
		}
		for _, c := range cs {
			if c.Metadata.Attempt == attempt && c.State == cri.ContainerState_CONTAINER_RUNNING {
				id = c.Id
				return true
			}
		}
		return false
	})
	return id
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// TestKubeletStaticPod runs a real kubelet (v1.34, no API server) on a
// static pod with a pod-level volume, against containerd with mooring-nri
// required and started from the DaemonSet's command line: the container is
// killed and restarted by the kubelet, the manifest removed and restored.
func TestKubeletStaticPod(t *testing.T) {
	k := newKubeNode(t)
	const volume = "team-k/kdata"
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: writer
  namespace: team-k
  annotations:
    ` + annotations.KeyPod + `: "[{name: kdata, target: /data, size: 100Mi}]"
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: ` + lab.BusyboxImage + `
    imagePullPolicy: Never
    command: ["sh", "-c", "echo start >> /data/starts; exec sleep 3600"]
`
	pod := "writer-" + lab.KubeletNodeName
	starts := func(id string) string {
		t.Helper()
		out, code, err := k.cri.Exec(id, "cat", "/data/starts")
		if err != nil || code != 0 {
			t.Fatalf("cat /data/starts: exit %d, %v", code, err)
		}
		return strings.TrimSpace(strings.ReplaceAll(out, "\n", " "))
	}
	k.kubelet.AddStaticPod("writer", manifest)
	id := k.running(pod, "app", 0)
	if got := starts(id); got != "start" {
		t.Fatalf("first start wrote %q", got)
	}
	if n := k.claims(volume); n != 1 {
		t.Fatalf("%d claims on %s while the pod runs, want 1", n, volume)
	}

	// kill -9: the kubelet restarts the container on the same volume, and
	// the dead container's claim is gone.
	pid, err := k.cri.PID(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	id = k.running(pod, "app", 1)
	if got := starts(id); got != "start start" {
		t.Fatalf("after the restart /data/starts holds %q, want two starts", got)
	}
	k.waitFor("one claim after the restart", 30*time.Second, func() bool { return k.claims(volume) == 1 })

	// Manifest removed: the kubelet stops and removes the pod (its sandbox
	// at the next minute's container GC), and mooring releases the volume.
	k.kubelet.RemoveStaticPod("writer")
	k.waitFor("the pod's containers removed and the volume released", 150*time.Second, func() bool {
		cs, err := k.cri.Containers(map[string]string{"io.kubernetes.pod.name": pod})
		return err == nil && len(cs) == 0 && k.claims(volume) == 0
	})

	// Re-created: the data is back.
	k.kubelet.AddStaticPod("writer", manifest)
	id = k.running(pod, "app", 0)
	if got := starts(id); got != "start start start" {
		t.Fatalf("the re-created pod sees %q, want the earlier starts and its own", got)
	}
}
