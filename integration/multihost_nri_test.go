package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// Every step of an rbd volume is several cluster calls of 0.1–0.5 s each
// (lease, record, watchers, the FUSE helper opening the image), so one
// Acquire takes seconds where a loop volume takes milliseconds; a Release
// stops the helper and gives the lease back. The NRI defaults (mooring-nri
// 1.5 s under containerd's 2 s) would drop the plugin mid-request, so the
// rbd nodes get a plugin deadline above the pool's cluster timeout and a
// runtime deadline above the plugin's.
const (
	rbdPluginTimeout  = 40 * time.Second
	rbdRuntimeTimeout = 50 * time.Second
)

// TestRBDHandoverThroughTwoContainerdNRI is scenario 5 of the multi-node
// issue: two "nodes", each a containerd with its own mooring-nri, mooring
// config, state and run directories and Ceph client id, share an rbd
// pool. A pod on node A writes; while it runs, node B's container is
// refused naming node-a; the pod is deleted on A and the same pod spec on
// B reads A's data.
func TestRBDHandoverThroughTwoContainerdNRI(t *testing.T) {
	ceph := lab.SharedCeph(t)
	requireFUSEHelper(t)
	const ns, vol = "team-a", "nri-handover"
	a := newRBDCRINode(t, ceph, "node-a")
	b := newRBDCRINode(t, ceph, "node-b")
	// Registered after the nodes, so it runs before their cleanups: the
	// image goes while node B's mooring can still reach it.
	t.Cleanup(func() { removeVolume(t, b.scratch, ns, vol) })

	ann := map[string]string{annotations.KeyPod: fmt.Sprintf(`[{name: %s, target: /data, pool: shared, size: 256Mi}]`, vol)}
	podA := a.pod(ns, "app", ann)
	t0 := time.Now()
	writer := a.start(podA, "w", "echo from-node-a > /data/f && sync && touch /tmp/written; "+untilTERM)
	t.Logf("node A: first use (create, lease, attach, mkfs) and start in %s", time.Since(t0).Round(time.Millisecond))
	waitForFile(t, a, writer, "/tmp/written")

	podB := b.pod(ns, "app", ann)
	t0 = time.Now()
	_, err := b.cri.CreateContainer(podB, "r", "sh", "-c", "cat /data/f")
	if err == nil || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("node B's container while node A holds the volume: want a refusal naming node-a, got %v\n%s", err, b.logs())
	}
	t.Logf("node B refused in %s: %v", time.Since(t0).Round(time.Millisecond), err)
	if n := b.scratch.Attachments(); n != 0 {
		t.Fatalf("node B kept %d attachment(s) after its refusal", n)
	}
	b.removePod(podB)

	a.removePod(podA)
	waitForAttachments(t, a.scratch, 0)

	podB = b.pod(ns, "app", ann)
	t0 = time.Now()
	if code := b.run(podB, "r", `test "$(cat /data/f)" = from-node-a`); code != 0 {
		t.Fatalf("node B did not read node A's data (exit %d)\n%s", code, b.logs())
	}
	t.Logf("node B: handover (lease, attach, fsck) and the reader's run in %s", time.Since(t0).Round(time.Millisecond))
	b.removePod(podB)
	waitForAttachments(t, b.scratch, 0)
}

// newRBDCRINode is one node of the shared rbd pool (rbdNodeConfig) served
// by its own containerd and mooring-nri.
func newRBDCRINode(t *testing.T, ceph *lab.Ceph, node string) *criEnv {
	t.Helper()
	e := &criEnv{t: t, bins: lab.Binaries(t), scratch: lab.NewScratch(t)}
	e.scratch.WriteConfig(rbdNodeConfig(ceph, node, ""))
	e.ctrd = lab.NewContainerd(t, lab.ContainerdOptions{RequestTimeout: rbdRuntimeTimeout})
	e.cri, e.engineLog, e.nriSocket = e.ctrd.CRI(), e.ctrd.Log, e.ctrd.NRISocket
	e.pluginArgs = []string{"--request-timeout", rbdPluginTimeout.String()}
	e.startPlugin()
	return e
}

// requireFUSEHelper needs one of the FUSE exports the rbd driver uses
// where the kernel has neither rbd nor nbd (this machine).
func requireFUSEHelper(t testing.TB) {
	_, qsd := exec.LookPath("qemu-storage-daemon")
	_, rbdFuse := exec.LookPath("rbd-fuse")
	testenv.Require(t, qsd == nil || rbdFuse == nil, "qemu-storage-daemon or rbd-fuse (run scripts/prereqs.sh)")
}

// waitForFile waits until path exists in the running container id.
func waitForFile(t *testing.T, e *criEnv, id, path string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, code, err := e.cri.Exec(id, "test", "-e", path); err == nil && code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear in container %s\n%s", path, id, e.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removeVolume deletes a volume through mooring's CLI with the scratch's
// config (for an rbd pool: its image in the cluster).
func removeVolume(t testing.TB, s *lab.Scratch, tenant, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lab.Binaries(t).Mooring, "volume", "rm", "--tenant", tenant, name)
	cmd.Env = s.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("mooring volume rm %s/%s: %v\n%s", tenant, name, err, out)
	}
}
