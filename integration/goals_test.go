package integration

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

// goalResult is one of the speed goals (docs/BENCHMARKS.md) as measured
// by a benchmark: the medians of the base and of the variant, taken
// interleaved in one run, and the limit. Benchmarks never fail on a goal:
// the table is printed for people to read, and a machine's load moves it.
type goalResult struct {
	name      string
	base, got float64 // ms, or IOPS for ratio goals
	unit      string
	maxAdded  float64 // ms the variant may add to the base; 0: a ratio goal
	minRatio  float64 // least got/base; 0: an added-ms goal
}

func (g goalResult) met() bool {
	if g.minRatio > 0 {
		return g.got/g.base >= g.minRatio
	}
	return g.got-g.base <= g.maxAdded
}

var goals struct {
	sync.Mutex
	byName map[string]goalResult
	order  []string
}

// recordGoal keeps the latest result of a goal (the framework runs a
// benchmark once with b.N = 1 before the timed run; the last run wins).
func recordGoal(g goalResult) {
	goals.Lock()
	defer goals.Unlock()
	if goals.byName == nil {
		goals.byName = map[string]goalResult{}
	}
	if _, ok := goals.byName[g.name]; !ok {
		goals.order = append(goals.order, g.name)
	}
	goals.byName[g.name] = g
}

// goalAdded records a goal of at most maxAdded ms over the base series.
func goalAdded(name string, med map[string]float64, base, variant string, maxAdded float64) {
	recordGoal(goalResult{name: name, base: med[base], got: med[variant], unit: "ms", maxAdded: maxAdded})
}

// printGoals writes the goals measured in this run, in the order the
// benchmarks ran, one line each: base, variant, added, ratio, limit, met.
func printGoals(w io.Writer) {
	goals.Lock()
	defer goals.Unlock()
	if len(goals.order) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSpeed goals (medians of one interleaved run; docs/BENCHMARKS.md):")
	fmt.Fprintf(w, "  %-52s %12s %12s %10s %7s %10s  %s\n", "goal", "base", "with", "added", "ratio", "limit", "met")
	for _, name := range goals.order {
		g := goals.byName[name]
		limit := fmt.Sprintf("+%.0f ms", g.maxAdded)
		if g.minRatio > 0 {
			limit = fmt.Sprintf("≥ %.2f", g.minRatio)
		}
		met := "yes"
		if !g.met() {
			met = "NO"
		}
		fmt.Fprintf(w, "  %-52s %9.1f %-2s %9.1f %-2s %+10.1f %7.2f %10s  %s\n", g.name, g.base, g.unit, g.got, g.unit, g.got-g.base, g.got/g.base, limit, met)
	}
}

// medians returns each series' median in ms.
func medians(series map[string][]time.Duration) map[string]float64 {
	out := make(map[string]float64, len(series))
	for name, d := range series {
		s := slices.Clone(d)
		slices.Sort(s)
		out[name] = float64(s[len(s)/2]) / float64(time.Millisecond)
	}
	return out
}

// reportMedians reports each series' median in ms, and its ratio and
// added ms relative to the base series, and returns the medians.
func reportMedians(b *testing.B, series map[string][]time.Duration, base string) map[string]float64 {
	med := medians(series)
	for name, m := range med {
		b.ReportMetric(m, name+"-ms")
		if name != base {
			b.ReportMetric(m/med[base], name+"-x")
			b.ReportMetric(m-med[base], name+"-added-ms")
		}
	}
	b.ReportMetric(0, "ns/op")
	return med
}
