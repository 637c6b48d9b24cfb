package metrics

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/prometheus/common/expfmt"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/volume"
)

// Command is mooring-metrics: the volume and pool figures on stdout, or
// written to DIR/mooring.prom with --textfile. `mooring metrics` runs it:
// it is a binary of its own so that the hook, which is the mooring binary,
// does not link (and initialise at every container start) the Prometheus
// client. Operation counters live in the processes that run operations
// (mooring-nri --metrics-addr).
func Command(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mooring-metrics", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "admin config (default $MOORING_CONFIG, then /etc/mooring/config.toml)")
	stateDir := fs.String("state-dir", "", "state directory (overrides the config's state_dir)")
	dir := fs.String("textfile", "", "write DIR/"+TextfileName+" atomically for node_exporter's textfile collector")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("usage: mooring metrics [--textfile DIR]")
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if *stateDir != "" {
		cfg.StateDir = *stateDir
	}
	m, err := volume.New(cfg)
	if err != nil {
		return err
	}
	reg := NewRegistry(false)
	reg.Watch(m)
	if *dir != "" {
		return WriteTextfile(*dir, reg)
	}
	families, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(stdout, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
