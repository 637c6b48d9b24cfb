package integration

import (
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/internal/lab"
)

// TestHookPodman runs podman (Debian 4.3) with mooring's hooks.d files and
// --annotation: the data outlives `podman run --rm` containers.
func TestHookPodman(t *testing.T) {
	bins := lab.Binaries(t)
	s := lab.NewScratch(t)
	p := lab.NewPodman(t, lab.Runc(t), lab.WriteHooksDir(t, bins.Mooring, s))
	// podman 4.3 reads --annotation as CSV (commas split values), so the
	// whole KEY=VALUE is CSV-quoted.
	ann := `"volumes.mooring.dev=[{name: pgdata, target: /var/lib/data, size: 100Mi}]"`
	run := func(script string) string {
		t.Helper()
		out, stderr, err := p.Run("run", "--rm", "--network", "none", "--annotation", ann, p.Image, "sh", "-c", script)
		if err != nil {
			t.Fatalf("podman run: %v\n%s\nlog: %s", err, stderr, s.Log())
		}
		return out
	}
	run("echo from-podman > /var/lib/data/f && sync")
	if n := s.Attachments(); n != 0 {
		t.Fatalf("%d attachments after podman run --rm", n)
	}
	if out := run("cat /var/lib/data/f"); strings.TrimSpace(out) != "from-podman" {
		t.Fatalf("second container read %q", out)
	}

	// A bad request fails podman run with mooring's reason.
	_, stderr, err := p.Run("run", "--rm", "--network", "none", "--annotation", "volumes.mooring.dev=- {name: x}", p.Image, "true")
	if err == nil || !strings.Contains(stderr, "target: missing") {
		t.Fatalf("bad request: err=%v stderr=%s", err, stderr)
	}

	// Containers without the annotation never call mooring.
	if out, stderr, err := p.Run("run", "--rm", "--network", "none", p.Image, "echo", "plain"); err != nil || out != "plain\n" {
		t.Fatalf("plain container: %v %q %s", err, out, stderr)
	}
}
