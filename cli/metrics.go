package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// metricsBinary is the command that renders metrics: a binary of its own,
// so that the mooring binary (which every container start runs as the
// hook) does not link the Prometheus client, whose initialisation alone
// cost more than a hook's Acquire (docs/BENCHMARKS.md).
const metricsBinary = "mooring-metrics"

// metrics: metrics [--textfile DIR], run by mooring-metrics next to this
// binary (else on PATH) with this command's config and state dir.
func (e *env) metrics(args []string) error {
	path, err := sibling(metricsBinary)
	if err != nil {
		return err
	}
	var argv []string
	if e.g.configPath != "" {
		argv = append(argv, "--config", e.g.configPath)
	}
	if e.g.stateDir != "" {
		argv = append(argv, "--state-dir", e.g.stateDir)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(e.ctx, path, append(argv, args...)...)
	cmd.Stdout, cmd.Stderr = e.stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && stderr.Len() > 0 {
		// Its one-line error is this command's.
		return errors.New(strings.TrimPrefix(strings.TrimSpace(stderr.String()), metricsBinary+": "))
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", metricsBinary, err)
	}
	return nil
}

// sibling finds a mooring binary installed next to this one, else on PATH.
func sibling(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed next to mooring nor on PATH (make install installs it): %w", name, err)
	}
	return p, nil
}
