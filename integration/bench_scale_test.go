package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// BenchmarkParallelStarts starts 1, 8, 32, then 128 containers at once
// through the hooks, first each with a new volume (first use: create,
// mkfs), then again with the same, now existing, volumes. It reports the
// wall time per start as the count grows (2 cores here: contention, not
// latency, is measured) and the wait for and hold time of the allocation
// lock, the only global one, from the hooks' log.
func BenchmarkParallelStarts(b *testing.B) {
	bins, rootfs := lab.Binaries(b), lab.Rootfs(b)
	runcPath := lab.Runc(b)
	for _, n := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			s := lab.NewScratch(b)
			runc := lab.NewRuntime(b, runcPath)
			bundles := make([]*lab.Bundle, n)
			for i := range bundles {
				bundles[i] = lab.NewBundle(b, runcPath, rootfs, "true").AddHooks(bins.Mooring, s)
				// 128 starts at once on 2 cores queue far longer than the
				// 60 s a single start is given: time them, do not fail them.
				patient := 600
				for _, h := range append(bundles[i].Spec.Hooks.CreateRuntime, bundles[i].Spec.Hooks.Poststop...) {
					*h.Timeout = patient
				}
				bundles[i].Save()
			}
			startAll := func(id string) time.Duration {
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i, bundle := range bundles {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, stderr, err := runc.Run(bundle, fmt.Sprintf("%s-%d", id, i)); err != nil {
							errs <- fmt.Errorf("%v: %s", err, stderr)
						}
					}()
				}
				wg.Wait()
				took := time.Since(start)
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				return took
			}
			var first, existing time.Duration
			for iter := 0; iter < b.N; iter++ {
				for i, bundle := range bundles {
					bundle.Annotate(annotations.Key, fmt.Sprintf(`[{name: s%d-%d, target: /data}]`, iter, i))
				}
				first += startAll(fmt.Sprintf("f%d", iter))
				existing += startAll(fmt.Sprintf("e%d", iter))
			}
			perStart := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N*n) }
			b.ReportMetric(perStart(first), "first-use-ms/start")
			b.ReportMetric(perStart(existing), "existing-ms/start")
			wait, held := allocLockTimes(b, s.LogFile)
			b.ReportMetric(wait[len(wait)/2], "alloc-lock-wait-median-ms")
			b.ReportMetric(wait[len(wait)-1], "alloc-lock-wait-max-ms")
			b.ReportMetric(held[len(held)/2], "alloc-lock-held-median-ms")
			b.ReportMetric(held[len(held)-1], "alloc-lock-held-max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// allocLockTimes returns the sorted wait and hold times (ms) of the
// allocation lock that the hooks logged.
func allocLockTimes(b *testing.B, logFile string) (wait, held []float64) {
	f, err := os.Open(logFile)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Msg  string  `json:"msg"`
			Wait float64 `json:"waitMs"`
			Held float64 `json:"heldMs"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "allocation lock released" {
			wait, held = append(wait, l.Wait), append(held, l.Held)
		}
	}
	if len(held) == 0 {
		b.Fatalf("no allocation lock logged in %s", logFile)
	}
	slices.Sort(wait)
	slices.Sort(held)
	return wait, held
}
