package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
)

// A node of a multi-host test: its own mooring config (node name, state
// and run dirs, Ceph client id) and its own runc root, with mooring's
// hooks, against the one lab Ceph cluster. The host is shared, so a
// "node" is everything mooring and the runtime keep, not a machine.
type rbdNode struct {
	name string
	*hookEnv
}

// rbdVolumeSeq makes volume names unique in the shared cluster.
var rbdVolumeSeq atomic.Int64

func newRBDNode(t *testing.T, ceph *lab.Ceph, name, extraPool string) *rbdNode {
	t.Helper()
	n := &rbdNode{name: name, hookEnv: newHookEnv(t)}
	n.scratch.WriteConfig(rbdNodeConfig(ceph, name, extraPool))
	return n
}

// rbdNodeConfig is the extra config of node name: its name and the rbd
// pool "shared" (FUSE data path, every tenant) with extraPool's keys.
func rbdNodeConfig(ceph *lab.Ceph, name, extraPool string) string {
	return fmt.Sprintf(`node_name = %q
[pools.shared]
driver = "rbd"
ceph_conf = %q
ceph_client = %q
rados_pool = %q
map = "fuse"
tenants = ["*"]
default_size = "128Mi"
%s`, name, ceph.Conf, ceph.ClientID(name), ceph.Pool, extraPool)
}

// twoRBDNodes starts (or reuses) the lab cluster and returns nodes a and
// b and a fresh volume name; the cleanup removes the volume's image.
func twoRBDNodes(t *testing.T, extraPool string) (a, b *rbdNode, vol string) {
	t.Helper()
	ceph := lab.SharedCeph(t)
	a, b = newRBDNode(t, ceph, "node-a", extraPool), newRBDNode(t, ceph, "node-b", extraPool)
	vol = fmt.Sprintf("mh%d", rbdVolumeSeq.Add(1))
	t.Cleanup(func() {
		for _, n := range []*rbdNode{b, a} {
			if _, errOut, err := n.mooring("volume", "rm", vol); err == nil || strings.Contains(errOut, "not found") {
				return
			}
		}
		t.Errorf("volume %s left in the cluster", vol)
	})
	return a, b, vol
}

// request asks for vol in the shared pool at /data.
func rbdRequest(vol string) string {
	return fmt.Sprintf(`[{name: %s, target: /data, pool: shared}]`, vol)
}

// mooring runs the admin CLI against the node's config.
func (n *rbdNode) mooring(args ...string) (stdout, stderr string, err error) {
	return lab.RunCmd(n.t, 2*time.Minute, n.scratch.Env(), n.bins.Mooring, args...)
}

func (n *rbdNode) bundleFor(vol, script string) *lab.Bundle {
	return n.bundle(rbdRequest(vol), script)
}

// runFails runs a container that must not start and returns runc's error
// output.
func (n *rbdNode) runFails(b *lab.Bundle, id string) string {
	n.t.Helper()
	out, errOut, err := n.runc.Run(b, id)
	if err == nil {
		n.t.Fatalf("%s: container %s ran (%q); want it refused", n.name, id, out)
	}
	return errOut
}

// helperPID is the pid of the FUSE helper serving the node's only
// attachment, from its journal.
func (n *rbdNode) helperPID() int {
	n.t.Helper()
	var pid int
	filepath.WalkDir(filepath.Join(n.scratch.StateDir, "attachments"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var a struct {
			Backend struct {
				Helper struct {
					PID int `json:"pid"`
				} `json:"helper"`
			} `json:"backend"`
		}
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &a) == nil && a.Backend.Helper.PID > 0 {
			pid = a.Backend.Helper.PID
		}
		return nil
	})
	if pid == 0 {
		n.t.Fatalf("%s: no helper recorded in the journal\nlog:\n%s", n.name, n.scratch.Log())
	}
	return pid
}

// containerPID is the pid of a running container's init.
func (n *rbdNode) containerPID(id string) int {
	n.t.Helper()
	out, errOut, err := n.runc.Exec("state", id)
	if err != nil {
		n.t.Fatalf("runc state %s: %v: %s", id, err, errOut)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Pid == 0 {
		n.t.Fatalf("runc state %s: %q", id, out)
	}
	return st.Pid
}

// stop kills a running container and deletes it (its poststop hook
// releases the volume).
func (n *rbdNode) stop(id string) {
	n.t.Helper()
	n.runc.Exec("kill", id, "KILL")
	waitFor(n.t, func() bool {
		out, _, _ := n.runc.Exec("state", id)
		return strings.Contains(out, `"stopped"`)
	})
	if _, errOut, err := n.runc.Exec("delete", id); err != nil {
		n.t.Fatalf("runc delete %s: %v: %s", id, err, errOut)
	}
}

// dieAfter runs container "doomed" with script on the volume, waits
// until /data/file reads synced, then kills the node the hard way: the
// container's processes and the volume's FUSE helper get SIGKILL, nothing
// is released.
func (n *rbdNode) dieAfter(vol, script, synced string) {
	n.t.Helper()
	if err := n.runc.Start(n.bundleFor(vol, script+" && sleep 600"), "doomed"); err != nil {
		n.t.Fatalf("%s: %v\nlog:\n%s", n.name, err, n.scratch.Log())
	}
	waitFor(n.t, func() bool {
		out, _, _ := n.runc.Exec("exec", "doomed", "cat", "/data/file")
		return out == synced
	})
	helper := n.helperPID()
	syscall.Kill(n.containerPID("doomed"), syscall.SIGKILL)
	syscall.Kill(helper, syscall.SIGKILL)
}

// gc runs the node's mooring gc.
func (n *rbdNode) gc() string {
	n.t.Helper()
	out, errOut, err := n.mooring("gc")
	if err != nil {
		n.t.Fatalf("%s: mooring gc: %v: %s\nlog:\n%s", n.name, err, errOut, n.scratch.Log())
	}
	return out
}

// Scenario 1: a container on node A writes and stops; a container on node
// B asks for the same volume and reads the data.
func TestRBDHandoverBetweenNodes(t *testing.T) {
	a, b, vol := twoRBDNodes(t, "")
	a.run(a.bundleFor(vol, "echo from-a > /data/file && sync"), "writer")
	if n := a.scratch.Attachments(); n != 0 {
		t.Fatalf("node-a keeps %d attachments after its container exited", n)
	}
	if out := b.run(b.bundleFor(vol, "cat /data/file"), "reader"); strings.TrimSpace(out) != "from-a" {
		t.Fatalf("node-b read %q\nlog:\n%s", out, b.scratch.Log())
	}
	// And back: the lease follows the volume.
	b.run(b.bundleFor(vol, "echo from-b >> /data/file && sync"), "writer-b")
	if out := a.run(a.bundleFor(vol, "cat /data/file"), "reader-a"); out != "from-a\nfrom-b\n" {
		t.Fatalf("node-a read %q", out)
	}
}

// Scenario 2: while A's container runs, B's request is refused with the
// holder named; A's container is unaffected.
func TestRBDSecondNodeRefusedWhileHeld(t *testing.T) {
	a, b, vol := twoRBDNodes(t, "")
	if err := a.runc.Start(a.bundleFor(vol, "echo live > /data/file && sync && sleep 600"), "holder"); err != nil {
		t.Fatalf("node-a: %v\nlog:\n%s", err, a.scratch.Log())
	}
	t.Cleanup(func() { a.runc.Exec("delete", "--force", "holder") })
	errOut := b.runFails(b.bundleFor(vol, "cat /data/file"), "intruder")
	if !strings.Contains(errOut, "held by node node-a since") {
		t.Fatalf("node-b's refusal does not name the holder: %s\nlog:\n%s", errOut, b.scratch.Log())
	}
	if n := b.scratch.Attachments(); n != 0 {
		t.Fatalf("node-b keeps %d attachments after the refusal", n)
	}
	out, errOut, err := a.runc.Exec("exec", "holder", "sh", "-c", "cat /data/file && echo more >> /data/file && sync && cat /data/file")
	if err != nil || out != "live\nlive\nmore\n" {
		t.Fatalf("node-a's container after the refusal: %q, %v: %s", out, err, errOut)
	}
	a.stop("holder")
	if out := b.run(b.bundleFor(vol, "cat /data/file"), "after"); out != "live\nmore\n" {
		t.Fatalf("node-b read %q once node-a stopped", out)
	}
}

// Scenario 3: node A dies (its container and its FUSE helper SIGKILLed,
// nothing released): B is refused until mooring volume fence, then reads
// everything A synced.
func TestRBDDeadNodeFencedAndTakenOver(t *testing.T) {
	a, b, vol := twoRBDNodes(t, "")
	a.dieAfter(vol, "for i in 1 2 3; do echo line$i >> /data/file; done; sync", "line1\nline2\nline3\n")

	errOut := b.runFails(b.bundleFor(vol, "cat /data/file"), "early")
	if !strings.Contains(errOut, "held by node node-a") {
		t.Fatalf("node-b before the fence: %s", errOut)
	}
	out, errOut, err := b.mooring("volume", "fence", vol)
	if err != nil || !strings.Contains(out, "taken over by node node-b") || !strings.Contains(out, "from node node-a") {
		t.Fatalf("mooring volume fence: %q, %v: %s", out, err, errOut)
	}
	// The takeover is recorded with the volume, for every node to see.
	if out, errOut, err := a.mooring("volume", "inspect", vol); err != nil || !strings.Contains(out, "lease: node node-b since") || !strings.Contains(out, "taken over by node node-b") || !strings.Contains(out, "from node node-a") {
		t.Fatalf("volume inspect on node-a after the fence: %v: %s\n%s", err, errOut, out)
	}
	if out := b.run(b.bundleFor(vol, "cat /data/file"), "survivor"); out != "line1\nline2\nline3\n" {
		t.Fatalf("node-b read %q after the fence\nlog:\n%s", out, b.scratch.Log())
	}
	// Node A comes back: its gc tears down what it held without touching
	// the cluster, and its runtime deletes the dead container.
	a.gc()
	if _, errOut, err := a.runc.Exec("delete", "--force", "doomed"); err != nil {
		t.Fatalf("runc delete on node-a: %v: %s", err, errOut)
	}
	if n := a.scratch.Attachments(); n != 0 {
		t.Fatalf("node-a keeps %d attachments after gc", n)
	}
}

// Scenario 4: split brain. A's container keeps writing (each line synced)
// while B fences it and takes over: A's writes fail from the fence on,
// B's filesystem checks clean, and B sees exactly A's lines up to some
// synced point.
func TestRBDSplitBrainFenceStopsTheOldWriter(t *testing.T) {
	a, b, vol := twoRBDNodes(t, "")
	writer := `i=0; while echo $i >> /data/log && sync; do i=$((i+1)); done; echo stopped > /dev/null; sleep 600`
	if err := a.runc.Start(a.bundleFor(vol, writer), "writer"); err != nil {
		t.Fatalf("node-a: %v\nlog:\n%s", err, a.scratch.Log())
	}
	t.Cleanup(func() { a.runc.Exec("delete", "--force", "writer") })
	waitFor(t, func() bool {
		out, _, _ := a.runc.Exec("exec", "writer", "sh", "-c", "wc -l < /data/log")
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n >= 20
	})
	out, errOut, err := b.mooring("volume", "fence", vol)
	if err != nil {
		t.Fatalf("mooring volume fence: %q, %v: %s", out, err, errOut)
	}
	// A's writes fail from the fence on (EIO through the fenced client).
	if out, errOut, err := a.runc.Exec("exec", "writer", "sh", "-c", "echo after-fence >> /data/log && sync"); err == nil {
		t.Fatalf("node-a wrote after the fence: %q %s", out, errOut)
	}
	got := b.run(b.bundleFor(vol, "cat /data/log"), "reader")
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) < 20 {
		t.Fatalf("node-b sees %d lines, node-a had synced at least 20", len(lines))
	}
	for i, l := range lines {
		if l != strconv.Itoa(i) {
			t.Fatalf("node-b sees line %d = %q: not a prefix of node-a's writes\n%s", i, l, got)
		}
	}
	// The fenced node never unmounted: B replays the journal (a check)
	// before it mounts, and the check passes.
	if log := b.scratch.Log(); !strings.Contains(log, `"msg":"filesystem check"`) || strings.Contains(log, "filesystem check failed") {
		t.Fatalf("node-b did not check the taken-over filesystem, or the check failed\nlog:\n%s", log)
	}
	// The fenced node's gc drops what it held while its container lives on.
	if out := a.gc(); !strings.Contains(out, "this node lost the volume") {
		t.Errorf("node-a's gc does not say it lost the volume: %s", out)
	}
	if n := a.scratch.Attachments(); n != 0 {
		t.Fatalf("node-a keeps %d attachments after gc found it fenced\nlog:\n%s", n, a.scratch.Log())
	}
	a.runc.Exec("delete", "--force", "writer")
}

// Scenario 6: a stopped OSD during Acquire gives a bounded, clear error
// (never a hung hook), and the volume is usable once the OSD resumes.
func TestRBDStoppedOSDGivesABoundedError(t *testing.T) {
	a, _, vol := twoRBDNodes(t, `timeout = "3s"`)
	a.run(a.bundleFor(vol, "echo before > /data/file && sync"), "first")
	ceph := lab.SharedCeph(t)
	if err := ceph.PauseOSD(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			ceph.ResumeOSD()
		}
	}()
	t0 := time.Now()
	errOut := a.runFails(a.bundleFor(vol, "cat /data/file"), "stalled")
	took := time.Since(t0)
	if !strings.Contains(errOut, "deadline") && !strings.Contains(errOut, "timed out") {
		t.Errorf("the refusal under a stopped OSD does not say it timed out: %s", errOut)
	}
	t.Logf("refused after %s: %s", took.Round(time.Millisecond), lastLine(errOut))
	if n := a.scratch.Attachments(); n != 0 {
		t.Errorf("%d attachments left after the failed start", n)
	}
	resumed = true
	if err := ceph.ResumeOSD(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		// Clients retry once the OSD answers again; the first start may
		// still meet its backlog.
		if out, _, err := a.runc.Run(a.bundleFor(vol, "cat /data/file"), "resumed"); err == nil {
			if out != "before\n" {
				t.Fatalf("after the OSD resumed: read %q", out)
			}
			return
		}
		a.runc.Exec("delete", "--force", "resumed")
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("the volume is not usable a minute after the OSD resumed\nlog:\n%s", a.scratch.Log())
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// The automatic takeover policy: with takeover_after set, a node finding
// the holder without watchers marks the time and, takeover_after later,
// fences the holder itself. The dead node's watch lasts until the OSD's
// watch timeout (30 s by default), so the takeover comes after both.
func TestRBDAutomaticTakeoverOfAnUnwatchedHolder(t *testing.T) {
	a, b, vol := twoRBDNodes(t, `takeover_after = "10s"`)
	a.dieAfter(vol, "echo synced > /data/file && sync", "synced\n")

	var refusals []string
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 0; ; attempt++ {
		id := fmt.Sprintf("taker%d", attempt)
		out, errOut, err := b.runc.Run(b.bundleFor(vol, "cat /data/file"), id)
		if err == nil {
			if out != "synced\n" {
				t.Fatalf("node-b read %q after the automatic takeover", out)
			}
			break
		}
		b.runc.Exec("delete", "--force", id)
		refusals = append(refusals, lastLine(errOut))
		if time.Now().After(deadline) {
			t.Fatalf("no automatic takeover in 3 minutes; refusals:\n%s\nlog:\n%s", strings.Join(refusals, "\n"), b.scratch.Log())
		}
		time.Sleep(3 * time.Second)
	}
	if !strings.Contains(strings.Join(refusals, "\n"), "taken over automatically in") {
		t.Errorf("no refusal announced the takeover:\n%s", strings.Join(refusals, "\n"))
	}
	if !strings.Contains(b.scratch.Log(), "volume taken over automatically") {
		t.Errorf("node-b did not log the takeover\nlog:\n%s", b.scratch.Log())
	}
	a.gc()
	if _, errOut, err := a.runc.Exec("delete", "--force", "doomed"); err != nil {
		t.Fatalf("runc delete on node-a: %v: %s", err, errOut)
	}
}

// TestRBDDoctorChecksThePool: mooring doctor asks an rbd pool's cluster
// and names the data path, and fails a pool whose RADOS pool does not
// exist, so a misconfigured node is found before a container starts
// without its volume.
func TestRBDDoctorChecksThePool(t *testing.T) {
	ceph := lab.SharedCeph(t)
	n := newRBDNode(t, ceph, "node-a", "")
	level, detail := doctorCheck(t, n.scratch.Env(), "pool shared", n.bins.Mooring, "--json", "doctor")
	if level != "OK" || !strings.Contains(detail, "data path fuse") || !strings.Contains(detail, "node node-a") {
		t.Errorf("pool shared: %s %s", level, detail)
	}
	n.scratch.WriteConfig(strings.Replace(rbdNodeConfig(ceph, "node-a", ""), `rados_pool = "`+ceph.Pool+`"`, `rados_pool = "nosuchpool"`, 1))
	level, detail = doctorCheck(t, n.scratch.Env(), "pool shared", n.bins.Mooring, "--json", "doctor")
	if level != "FAIL" || !strings.Contains(detail, `no RADOS pool "nosuchpool"`) {
		t.Errorf("pool with a missing RADOS pool: %s %s", level, detail)
	}
}
