package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// BenchmarkParallelStarts starts 32, then 128 containers at once, each
// with a new volume through the hooks, and reports wall time per start as
// the count grows (2 cores here: contention, not latency, is measured).
func BenchmarkParallelStarts(b *testing.B) {
	bins, rootfs := lab.Binaries(b), lab.Rootfs(b)
	runcPath := lab.Runc(b)
	for _, n := range []int{32, 128} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			s := lab.NewScratch(b)
			runc := lab.NewRuntime(b, runcPath)
			bundles := make([]*lab.Bundle, n)
			for i := range bundles {
				bundles[i] = lab.NewBundle(b, runcPath, rootfs, "true").AddHooks(bins.Mooring, s)
			}
			var total time.Duration
			for iter := 0; iter < b.N; iter++ {
				for i, bundle := range bundles {
					bundle.Annotate(annotations.Key, fmt.Sprintf(`[{name: s%d-%d, target: /data}]`, iter, i))
				}
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i, bundle := range bundles {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, stderr, err := runc.Run(bundle, fmt.Sprintf("p%d-%d", iter, i)); err != nil {
							errs <- fmt.Errorf("%v: %s", err, stderr)
						}
					}()
				}
				wg.Wait()
				total += time.Since(start)
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N*n), "ms/start")
			b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N), "ms/batch")
			b.ReportMetric(0, "ns/op")
		})
	}
}
