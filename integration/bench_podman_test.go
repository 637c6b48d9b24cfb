package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
)

// BenchmarkPodmanStart compares, in one interleaved run, a podman
// container start with no volume, with a mooring volume (hooks.d), and
// with the peer users would pick instead: a podman local volume backed by
// an ext4 image mounted with -o loop. Each start is timed as `podman run
// -d` (it returns once the container started, after the createRuntime
// hooks); attached runs and `podman wait` sit out a 20 s conmon timeout on
// these machines, with or without volumes, so the exit is polled untimed.
func BenchmarkPodmanStart(b *testing.B) {
	bins, s := lab.Binaries(b), lab.NewScratch(b)
	p := lab.NewPodman(b, lab.Runc(b), lab.WriteHooksDir(b, bins.Mooring, s))
	img := filepath.Join(s.PoolDir, "podman-loop.img")
	mustCmd(b, "truncate", "-s", "1G", img)
	mustCmd(b, "mkfs.ext4", "-q", img)
	if _, stderr, err := p.Run("volume", "create", "--opt", "type=ext4", "--opt", "device="+img, "--opt", "o=loop", "peer"); err != nil {
		b.Fatalf("podman volume create: %v %s", err, stderr)
	}
	variants := map[string][]string{
		"plain":   {},
		"mooring": {"--annotation", `"volumes.mooring.dev=[{name: bench, target: /data, size: 1Gi}]"`},
		"loopvol": {"-v", "peer:/data"},
	}
	start := func(name string, i int) time.Duration {
		id := fmt.Sprintf("%s-%d", name, i)
		args := append(append([]string{"run", "-d", "--network", "none", "--name", id}, variants[name]...), p.Image, "true")
		t0 := time.Now()
		if _, stderr, err := p.Run(args...); err != nil {
			b.Fatalf("podman run %s: %v\n%s\nlog: %s", name, err, stderr, s.Log())
		}
		d := time.Since(t0)
		for {
			out, _, _ := p.Run("inspect", "--format", "{{.State.Status}}", id)
			if st := strings.TrimSpace(out); st == "exited" || st == "stopped" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, stderr, err := p.Run("rm", id); err != nil {
			b.Fatalf("podman rm %s: %v %s", id, err, stderr)
		}
		return d
	}
	start("mooring", -1)
	series := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{"plain", "mooring", "loopvol"} {
			series[name] = append(series[name], start(name, i))
		}
	}
	b.StopTimer()
	waitForAttachments(b, s, 0)
	if _, stderr, err := p.Run("volume", "rm", "peer"); err != nil {
		b.Fatalf("podman volume rm: %v %s", err, stderr)
	}
	med := reportMedians(b, series, "plain")
	goalAdded("podman start, existing volume vs podman's loop volume", med, "loopvol", "mooring", 3)
}
