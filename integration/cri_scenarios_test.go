package integration

import (
	"strings"
	"syscall"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// untilTERM keeps a container running until it is stopped: a shell as PID
// 1 would ignore SIGTERM, and CRI-O waits at least 30 s before SIGKILL.
const untilTERM = "trap 'exit 0' TERM; sleep 600 & wait"

// Scenarios every CRI setup (criEnv) must pass, whatever the runtime and
// whether mooring serves it through NRI or hooks.d.

// dataOutlivesPods: a pod writes to its volume; a later pod of the same
// namespace reads it back.
func dataOutlivesPods(e *criEnv) {
	t := e.t
	ann := map[string]string{annotations.KeyPod: `[{name: data, target: /data, size: 100Mi}]`}
	p1 := e.pod("team-a", "writer", ann)
	if code := e.run(p1, "w", "echo from-k8s > /data/f && grep ' /data ' /proc/mounts | grep -q nosuid"); code != 0 {
		t.Fatalf("writer exited %d\n%s", code, e.logs())
	}
	e.removePod(p1)
	waitForAttachments(t, e.scratch, 0)
	p2 := e.pod("team-a", "reader", ann)
	if code := e.run(p2, "r", `test "$(cat /data/f)" = from-k8s`); code != 0 {
		t.Fatalf("second pod did not read the data (exit %d)\n%s", code, e.logs())
	}
	e.removePod(p2)
	waitForAttachments(t, e.scratch, 0)
}

// precedenceAndSharing: a container's own key beats the pod key, and two
// containers of a pod share the pod's volume.
func precedenceAndSharing(e *criEnv) {
	t := e.t
	p := e.pod("team-a", "multi", map[string]string{
		annotations.KeyPod:                    `[{name: shared, target: /shared}]`,
		annotations.KeyContainerPrefix + "db": `[{name: own, target: /own}]`,
	})
	if code := e.run(p, "db", "test -d /own && ! test -d /shared"); code != 0 {
		t.Fatalf("db: the container key must win over the pod key (exit %d)\n%s", code, e.logs())
	}
	e.start(p, "a", "echo a > /shared/a; "+untilTERM)
	if code := e.run(p, "b", "sleep 1; cat /shared/a"); code != 0 {
		t.Fatalf("b does not see a's write on the shared volume (exit %d)\n%s", code, e.logs())
	}
	e.removePod(p)
	waitForAttachments(t, e.scratch, 0)
}

// tenantPerNamespace: the tenant is the pod's namespace as the runtime
// reports it, so namespace team-b asking for team-a's volume name gets a
// volume of its own.
func tenantPerNamespace(e *criEnv) {
	t := e.t
	ann := map[string]string{annotations.KeyPod: `[{name: shared, target: /shared}]`}
	a := e.pod("team-a", "owner", ann)
	if code := e.run(a, "w", "echo secret > /shared/secret"); code != 0 {
		t.Fatalf("team-a writer exited %d\n%s", code, e.logs())
	}
	b := e.pod("team-b", "intruder", ann)
	if code := e.run(b, "x", "test ! -e /shared/secret"); code != 0 {
		t.Fatalf("team-b reached team-a's volume (exit %d)\n%s", code, e.logs())
	}
	e.removePod(a)
	e.removePod(b)
	waitForAttachments(t, e.scratch, 0)
}

// refusalFailsCreate: a request mooring refuses fails the container's
// creation with mooring's reason, and nothing stays attached.
func refusalFailsCreate(e *criEnv) {
	t := e.t
	p := e.pod("ns", "bad", map[string]string{annotations.KeyPod: `[{name: big, target: /data, size: 100Gi}]`})
	id, err := e.cri.CreateContainer(p, "c", "true")
	if err == nil {
		// hooks.d: the hook may run at start rather than at create.
		err = e.cri.Start(id)
	}
	if err == nil || !strings.Contains(err.Error(), "mooring: ") || !strings.Contains(err.Error(), "size over pool maximum") {
		t.Fatalf("a refused request: want mooring's reason, got %v\n%s", err, e.logs())
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after a refused container", n)
	}
	e.removePod(p)
}

// synchronizeAfterPluginRestart (NRI only): mooring-nri dies while a pod is
// removed; on restart Synchronize releases the stale claim and keeps the
// live one.
func synchronizeAfterPluginRestart(e *criEnv) {
	t := e.t
	keep := e.pod("ns", "keep", map[string]string{annotations.KeyPod: `[{name: keep, target: /data}]`})
	gone := e.pod("ns", "gone", map[string]string{annotations.KeyPod: `[{name: gone, target: /data}]`})
	for _, p := range []*lab.Pod{keep, gone} {
		e.start(p, "c", untilTERM)
	}
	if n := e.scratch.Attachments(); n != 2 {
		t.Fatalf("%d attachments, want 2", n)
	}
	e.signalPlugin(syscall.SIGKILL)
	e.removePod(gone)
	if n := e.scratch.Attachments(); n != 2 {
		t.Fatalf("%d attachments while the plugin is down, want the stale 2", n)
	}
	e.startPlugin()
	waitForAttachments(t, e.scratch, 1)
	if code := e.run(keep, "check", "test -d /data"); code != 0 {
		t.Fatalf("the live pod lost its volume\n%s", e.logs())
	}
	e.removePod(keep)
	waitForAttachments(t, e.scratch, 0)
}
