package integration

import (
	"os"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// The NRI plugin against every runtime with NRI: containerd 2.4 and CRI-O
// 1.34 (scenarios in cri_scenarios_test.go).

func TestNRIDataOutlivesPods(t *testing.T) { eachSetup(t, nriSetups, dataOutlivesPods) }

func TestNRIPrecedenceSharingAndTenants(t *testing.T) {
	eachSetup(t, nriSetups, func(e *criEnv) {
		precedenceAndSharing(e)
		tenantPerNamespace(e)
	})
}

func TestNRIRefusalFailsCreateContainer(t *testing.T) {
	eachSetup(t, nriSetups, refusalFailsCreate)
}

func TestNRISynchronizeAfterPluginRestart(t *testing.T) {
	eachSetup(t, nriSetups, synchronizeAfterPluginRestart)
}

// TestNRIPreRegisteredPlugin lets containerd start mooring-nri from its
// plugin_path (index from the file name) with the admin config from
// plugin_config_path, delivered through NRI's Configure.
func TestNRIPreRegisteredPlugin(t *testing.T) {
	bins, s := lab.Binaries(t), lab.NewScratch(t)
	cfg, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	ctrd := lab.NewContainerd(t, lab.ContainerdOptions{
		Plugins:       map[string]string{"10-mooring": bins.NRI},
		PluginConfigs: map[string]string{"10-mooring": string(cfg)},
	})
	c := ctrd.CRI()
	p, err := c.RunPod("ns", "pre", map[string]string{annotations.KeyPod: `[{name: pre, target: /data}]`})
	if err != nil {
		t.Fatal(err)
	}
	code, err := c.RunContainer(p, "c", "sh", "-c", "grep -q ' /data ' /proc/mounts")
	if err != nil || code != 0 {
		t.Fatalf("container in a pod served by the pre-registered plugin: exit %d, %v\n%s", code, err, ctrd.Log())
	}
	if err := c.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	waitForAttachments(t, s, 0)
}

// TestShimAsContainerdBinaryName runs CRI containers through containerd
// with mooring-runtime as runc's BinaryName (no NRI plugin): the request
// comes from the pod annotation that containerd copies into the spec.
func TestShimAsContainerdBinaryName(t *testing.T) {
	bins, s := lab.Binaries(t), lab.NewScratch(t)
	ctrd := lab.NewContainerd(t, lab.ContainerdOptions{BinaryName: lab.WrapWithEnv(t, bins.Runtime, s.Env())})
	c := ctrd.CRI()
	ann := map[string]string{annotations.KeyPod: `[{name: ctrd, target: /data}]`}
	p, err := c.RunPod("ns", "shim", ann)
	if err != nil {
		t.Fatalf("RunPodSandbox through the shim: %v\n%s", err, ctrd.Log())
	}
	if n := s.Attachments(); n != 0 {
		t.Fatalf("the pod's sandbox got %d volume(s); only workload containers do", n)
	}
	code, err := c.RunContainer(p, "w", "sh", "-c", "echo via-containerd > /data/f")
	if err != nil || code != 0 {
		t.Fatalf("writer: exit %d %v\nlog: %s", code, err, s.Log())
	}
	code, err = c.RunContainer(p, "r", "sh", "-c", `test "$(cat /data/f)" = via-containerd`)
	if err != nil || code != 0 {
		t.Fatalf("reader: exit %d %v", code, err)
	}
	if err := c.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	waitForAttachments(t, s, 0)
}

// TestNRIDataServicesByAnnotation: what a pod's annotations can drive
// through the NRI plugin (containerd and CRI-O): a snapshot taken with the
// CLI is cloned by a request with from:, the clone gets the size it asks
// for, and a volume grows when a later pod asks for more in a
// grow_on_request pool.
func TestNRIDataServicesByAnnotation(t *testing.T) {
	eachSetup(t, nriSetups, func(e *criEnv) {
		e.stopPlugin()
		e.scratch.WriteConfig(`[pools.elastic]
driver = "loop"
directory = "` + e.scratch.PoolDir + `"
max_size = "1Gi"
grow_on_request = true
tenants = ["*"]
`)
		e.startPlugin()
		app := map[string]string{annotations.KeyPod: `[{name: app, target: /data, pool: elastic, size: 128Mi}]`}
		p := e.pod("team-a", "writer", app)
		if code := e.run(p, "w", "echo template > /data/f && sync"); code != 0 {
			t.Fatalf("writer exited %d\n%s", code, e.logs())
		}
		e.removePod(p)
		waitForAttachments(t, e.scratch, 0)
		if _, errOut, err := lab.RunCmd(t, time.Minute, e.scratch.Env(), e.bins.Mooring, "volume", "snapshot", "team-a/app", "golden"); err != nil {
			t.Fatalf("mooring volume snapshot: %v: %s", err, errOut)
		}
		clone := map[string]string{annotations.KeyPod: `[{name: work, target: /w, pool: elastic, from: app@golden, size: 256Mi}]`}
		p = e.pod("team-a", "cloner", clone)
		if code := e.run(p, "c", `test "$(cat /w/f)" = template && test "$(df -k /w | tail -1 | awk '{print $2}')" -gt 200000`); code != 0 {
			t.Fatalf("the clone does not hold the snapshot's data at the size asked (exit %d)\n%s", code, e.logs())
		}
		e.removePod(p)
		bigger := map[string]string{annotations.KeyPod: `[{name: app, target: /data, pool: elastic, size: 512Mi}]`}
		p = e.pod("team-a", "grower", bigger)
		if code := e.run(p, "g", `test "$(cat /data/f)" = template && test "$(df -k /data | tail -1 | awk '{print $2}')" -gt 400000`); code != 0 {
			t.Fatalf("grow_on_request: the volume did not grow to the size asked (exit %d)\n%s", code, e.logs())
		}
		e.removePod(p)
		waitForAttachments(t, e.scratch, 0)
	})
}
