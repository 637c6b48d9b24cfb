package cli

import (
	"fmt"

	"github.com/prometheus/common/expfmt"

	"github.com/mooring-dev/mooring/metrics"
)

// metrics: metrics [--textfile DIR]. It reports the volume and pool
// figures; operation counters live in the processes that run operations
// (mooring-nri --metrics-addr).
func (e *env) metrics(args []string) error {
	fs := flags("metrics")
	dir := fs.String("textfile", "", "write DIR/"+metrics.TextfileName+" atomically for node_exporter's textfile collector")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: metrics [--textfile DIR]", ErrUsage)
	}
	m, err := e.manager()
	if err != nil {
		return err
	}
	reg := metrics.NewRegistry(false)
	reg.Watch(m)
	if *dir != "" {
		return metrics.WriteTextfile(*dir, reg)
	}
	families, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(e.stdout, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
