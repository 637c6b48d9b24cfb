// Command mooring-metrics writes mooring's volume and pool metrics in the
// Prometheus text format; `mooring metrics` runs it. See package metrics.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mooring-dev/mooring/metrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := metrics.Command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mooring-metrics:", err)
		os.Exit(1)
	}
}
