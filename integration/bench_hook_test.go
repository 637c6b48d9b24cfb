package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// BenchmarkRuncRunWithHook times `runc run` of a trivial container three
// ways, interleaved in one run so the ratios share the machine's load:
// no hooks, mooring's hooks with an existing volume, and a first use
// (create, mkfs, fsck-free mount of a new 1 GiB ext4 volume). It reports
// medians in ms and the ratios to the plain run.
func BenchmarkRuncRunWithHook(b *testing.B) {
	bins, rootfs, s := lab.Binaries(b), lab.Rootfs(b), lab.NewScratch(b)
	runc := lab.NewRuntime(b, lab.Runc(b))
	plain := lab.NewBundle(b, runc.Path, rootfs, "true")
	existing := lab.NewBundle(b, runc.Path, rootfs, "true").
		Annotate(annotations.Key, `[{name: bench, target: /data, size: 1Gi}]`).AddHooks(bins.Mooring, s)
	fresh := lab.NewBundle(b, runc.Path, rootfs, "true").AddHooks(bins.Mooring, s)
	mustRun := func(bundle *lab.Bundle, id string) time.Duration {
		start := time.Now()
		if _, stderr, err := runc.Run(bundle, id); err != nil {
			b.Fatalf("runc run %s: %v\n%s", id, err, stderr)
		}
		return time.Since(start)
	}
	mustRun(existing, "warm") // create and format the shared volume once
	var tPlain, tExisting, tFirst []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tPlain = append(tPlain, mustRun(plain, fmt.Sprintf("plain-%d", i)))
		tExisting = append(tExisting, mustRun(existing, fmt.Sprintf("existing-%d", i)))
		fresh.Annotate(annotations.Key, fmt.Sprintf(`[{name: first-%d, target: /data, size: 1Gi}]`, i))
		tFirst = append(tFirst, mustRun(fresh, fmt.Sprintf("first-%d", i)))
	}
	b.StopTimer()
	med := reportMedians(b, map[string][]time.Duration{"plain": tPlain, "hook-existing": tExisting, "hook-first-use": tFirst}, "plain")
	goalAdded("runc + hooks, existing volume", med, "plain", "hook-existing", 6)
	goalAdded("runc + hooks, first use of 1 GiB ext4", med, "plain", "hook-first-use", 15)
}
