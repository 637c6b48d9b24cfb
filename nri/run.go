package nri

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/metrics"
	"github.com/mooring-dev/mooring/volume"
)

// Reconnect backoff bounds.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// Run runs the plugin until ctx ends. Started by the runtime from its
// plugin_path, it serves the connection it was given and exits when that
// closes (the runtime restarts it); started on its own, it connects to the
// NRI socket and reconnects with backoff whenever the runtime goes away.
func Run(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("mooring-nri", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "admin config (default $MOORING_CONFIG, then /etc/mooring/config.toml)")
	name := fs.String("name", "mooring", "plugin name")
	idx := fs.String("idx", "10", "plugin index (ignored when the runtime starts the plugin: it names it)")
	socket := fs.String("socket", "", "NRI socket of the runtime (default /var/run/nri/nri.sock)")
	interval := fs.Duration("reconcile-interval", time.Minute, "how often to release volumes of containers that are gone")
	timeout := fs.Duration("request-timeout", DefaultRequestTimeout, "time limit for one Acquire; keep it below the runtime's plugin_request_timeout")
	checkHook := fs.String("check-hook", "", "host path of the mooring binary the runtime runs to check where volumes were mounted (default: mooring next to this binary)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9469); off when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hookPath, err := findCheckHook(*checkHook)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "nri")
	// Operation counters only here, in the long-running process that runs
	// the operations (the textfile of hook and shim hosts has none).
	var observe []volume.Option
	var reg *metrics.Registry
	if *metricsAddr != "" {
		reg = metrics.NewRegistry(true)
		observe = append(observe, volume.WithObserver(reg.Operations))
	}
	m, err := volume.New(cfg, append([]volume.Option{volume.WithLogger(log)}, observe...)...)
	if err != nil {
		return err
	}
	p := NewPlugin(m, log, *timeout, hookPath, observe...)
	if reg != nil {
		reg.Watch(p)
		if err := reg.Serve(ctx, *metricsAddr, log); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	go p.reconcileEvery(ctx, *interval)
	go p.endLingering(ctx)

	preRegistered := os.Getenv(api.PluginSocketEnvVar) != ""
	backoff := minBackoff
	for {
		opts := []stub.Option{stub.WithPluginName(*name)}
		if !preRegistered {
			opts = append(opts, stub.WithPluginIdx(*idx))
		}
		if *socket != "" {
			opts = append(opts, stub.WithSocketPath(*socket))
		}
		s, err := stub.New(p, opts...)
		if err != nil {
			return fmt.Errorf("plugin stub: %w", err)
		}
		started := time.Now()
		err = s.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case preRegistered:
			return fmt.Errorf("connection to the runtime closed: %w", err)
		}
		if time.Since(started) > time.Minute {
			backoff = minBackoff
		}
		log.Warn("runtime connection lost; reconnecting", "error", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// reconcileEvery runs Reconcile periodically until ctx ends.
func (p *Plugin) reconcileEvery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if rep, err := p.Reconcile(ctx); err != nil || len(rep.Released) > 0 || len(rep.Lost) > 0 {
				p.log.Info("periodic reconcile", "released", len(rep.Released), "lost", len(rep.Lost), "error", err)
			}
		}
	}
}

// lingerRecheck bounds how long endLingering sleeps: a volume may start
// to linger in another process (the CLI, a hook) without waking it.
const lingerRecheck = time.Minute

// endLingering unstages lingering volumes when their period ends, until
// ctx ends: the timer of hosts with the plugin (elsewhere the next
// Acquire, Release or gc does it).
func (p *Plugin) endLingering(ctx context.Context) {
	for {
		next, err := p.manager().EndLingering(ctx)
		if err != nil {
			p.log.Warn("lingering volumes not unstaged", "error", err)
		}
		wait := lingerRecheck
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.released:
		case <-t.C:
		}
		t.Stop()
	}
}

// wakeLingering tells endLingering that a volume may have started to
// linger.
func (p *Plugin) wakeLingering() {
	select {
	case p.released <- struct{}{}:
	default:
	}
}

// findCheckHook returns the mooring binary the runtime runs as the
// createRuntime target check: the given path, else mooring in the
// directory of this binary (symlinks resolved, as a pre-registered
// plugin is often a link into the install directory). Without it every
// volume would be refused at container start, so a missing one fails here.
func findCheckHook(path string) (string, error) {
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find mooring next to mooring-nri: %w", err)
		}
		path = filepath.Join(filepath.Dir(self), "mooring")
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("--check-hook %q: want an absolute path on the host", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("the target check hook (install mooring next to mooring-nri or pass --check-hook): %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("the target check hook %s is not an executable file", path)
	}
	return path, nil
}
