package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// BenchmarkCRICreateContainer times CRI CreateContainer on containerd with
// mooring-nri, interleaved in one run: a pod without a request, a pod whose
// volume exists, and a first use (a new 1 GiB ext4 volume each time). Each
// container is removed before the next, so every create stages its volume.
func BenchmarkCRICreateContainer(b *testing.B) {
	e := newCRIEnv(b, containerdNRI)
	plain := e.pod("bench", "plain", nil)
	existing := e.pod("bench", "existing", map[string]string{annotations.KeyPod: `[{name: bench, target: /data, size: 1Gi}]`})
	timedCreate := func(p *lab.Pod, name string) time.Duration {
		start := time.Now()
		id, err := e.cri.CreateContainer(p, name, "true")
		d := time.Since(start)
		if err != nil {
			b.Fatalf("CreateContainer %s: %v", name, err)
		}
		if err := e.cri.RemoveContainer(id); err != nil {
			b.Fatal(err)
		}
		return d
	}
	timedCreate(existing, "warm")
	var tPlain, tExisting, tFirst []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tPlain = append(tPlain, timedCreate(plain, fmt.Sprintf("p%d", i)))
		tExisting = append(tExisting, timedCreate(existing, fmt.Sprintf("e%d", i)))
		first := e.pod("bench", fmt.Sprintf("first%d", i), map[string]string{annotations.KeyPod: fmt.Sprintf(`[{name: first%d, target: /data, size: 1Gi}]`, i)})
		tFirst = append(tFirst, timedCreate(first, "f"))
		e.removePod(first)
	}
	b.StopTimer()
	med := reportMedians(b, map[string][]time.Duration{"no-request": tPlain, "existing": tExisting, "first-use": tFirst}, "no-request")
	goalAdded("NRI CreateContainer, existing volume", med, "no-request", "existing", 3)
	goalAdded("NRI CreateContainer, first use of 1 GiB ext4", med, "no-request", "first-use", 20)
	e.removePod(plain)
	e.removePod(existing)
}
