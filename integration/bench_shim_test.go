package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// BenchmarkShimRun times `run` of a trivial container, interleaved in one
// run: plain runc, the shim with no request (passthrough: parse, config,
// exec), and the shim with an existing volume. Medians in ms and ratios to
// plain runc.
func BenchmarkShimRun(b *testing.B) {
	bins, rootfs, s := lab.Binaries(b), lab.Rootfs(b), lab.NewScratch(b)
	runcPath := lab.Runc(b)
	runc := lab.NewRuntime(b, runcPath)
	shim := lab.NewRuntime(b, bins.Runtime, s.Env()...)
	plain := lab.NewBundle(b, runcPath, rootfs, "true")
	withVolume := lab.NewBundle(b, runcPath, rootfs, "true").Annotate(annotations.Key, `[{name: bench, target: /data, size: 1Gi}]`)
	timed := func(r *lab.Runtime, bundle *lab.Bundle, id string) time.Duration {
		start := time.Now()
		if _, stderr, err := r.Run(bundle, id); err != nil {
			b.Fatalf("run %s: %v\n%s", id, err, stderr)
		}
		return time.Since(start)
	}
	timed(shim, withVolume, "warm")
	var tPlain, tPass, tVol []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tPlain = append(tPlain, timed(runc, plain, fmt.Sprintf("plain-%d", i)))
		tPass = append(tPass, timed(shim, plain, fmt.Sprintf("pass-%d", i)))
		tVol = append(tVol, timed(shim, withVolume, fmt.Sprintf("vol-%d", i)))
	}
	b.StopTimer()
	med := reportMedians(b, map[string][]time.Duration{"runc": tPlain, "shim-passthrough": tPass, "shim-existing": tVol}, "runc")
	goalAdded("shim, no request (passthrough)", med, "runc", "shim-passthrough", 3)
	goalAdded("shim, existing volume", med, "runc", "shim-existing", 8)
}
