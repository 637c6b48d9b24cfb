package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
)

// TestShimDocker runs docker 20.10 (no annotations) with mooring-runtime
// as a runtime and the request in the env MOORING_VOLUMES, which the
// admin config allows.
func TestShimDocker(t *testing.T) {
	e := newShimEnv(t)
	e.scratch.WriteConfig("allow_env_requests = true\n")
	d := lab.NewDockerd(t, e.bins.Runtime, e.scratch.Env())
	env := "MOORING_VOLUMES=[{name: dock, target: /data, size: 100Mi}]"
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := d.Docker(append([]string{"run", "--rm", "--runtime", "mooring", "--network", "none", "-e", env}, args...)...)
		if err != nil {
			t.Fatalf("docker run: %v\n%s\nlog: %s", err, stderr, e.scratch.Log())
		}
		return out
	}
	run(d.Image, "sh", "-c", "echo from-docker > /data/f")
	if out := run(d.Image, "cat", "/data/f"); strings.TrimSpace(out) != "from-docker" {
		t.Fatalf("second container read %q", out)
	}

	// docker rm -f of a running container releases the volume.
	if _, stderr, err := d.Docker("run", "-d", "--name", "long", "--runtime", "mooring", "--network", "none", "-e", env, d.Image, "sleep", "600"); err != nil {
		t.Fatalf("docker run -d: %v %s", err, stderr)
	}
	if n := e.scratch.Attachments(); n != 1 {
		t.Fatalf("%d attachments while running", n)
	}
	if _, stderr, err := d.Docker("rm", "-f", "long"); err != nil {
		t.Fatalf("docker rm -f: %v %s", err, stderr)
	}
	waitForAttachments(t, e.scratch, 0)

	// A bad request fails docker run with mooring's reason.
	_, stderr, err := d.Docker("run", "--rm", "--runtime", "mooring", "--network", "none", "-e", "MOORING_VOLUMES=[{name: x, target: /sys/x}]", d.Image, "true")
	if err == nil || !strings.Contains(stderr, "mooring: ") || !strings.Contains(stderr, "must not be /sys or below it") {
		t.Fatalf("bad request through docker: err=%v\n%s", err, stderr)
	}
}

func waitForAttachments(t testing.TB, s *lab.Scratch, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Attachments() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d attachments, want %d\nlog: %s", s.Attachments(), n, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
