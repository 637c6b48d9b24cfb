package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/version"
	"github.com/mooring-dev/mooring/volume"
)

// ErrUsage marks a command line that could not be understood.
var ErrUsage = errors.New("usage")

const usage = `mooring: persistent volumes for containers

Usage:
  mooring [--config PATH] [--state-dir DIR] [--json] COMMAND

Commands:
  volume create NAME [--tenant T] [--pool P] [--size 10Gi] [--fs ext4|xfs|btrfs]
  volume ls [--tenant T]
  volume inspect [TENANT/]NAME
  volume rm [--tenant T] [TENANT/]NAME   refuses while the volume is attached
  pools ls                         provisioned vs capacity vs really used
  volume resize [TENANT/]NAME --size 20Gi        grow (online when attached)
  volume snapshot [TENANT/]NAME SNAP             crash-consistent copy
  volume snapshot ls [[TENANT/]NAME]
  volume snapshot rm [TENANT/]NAME@SNAP
  volume clone [TENANT/]NAME@SNAP NEW [--size S] same tenant, new fs UUID
  volume restore [TENANT/]NAME@SNAP              refuses while attached
  volume export [TENANT/]NAME [--snapshot S] > FILE
  volume import [TENANT/]NAME [--pool P] < FILE
  volume stats [[TENANT/]NAME]
  volume fence [--tenant T] [TENANT/]NAME  take a shared (rbd) volume over from a dead node
  metrics [--textfile DIR]         Prometheus metrics (stdout, or DIR/mooring.prom)
  attachments ls
  gc                               release claims of containers that are gone
  doctor                           check loop support, fs tools and runtimes
  version
  hook createRuntime|prestart|poststop   (called by runtimes, not by hand)
`

// globals are the flags every command takes, anywhere on the line.
type globals struct {
	configPath string
	stateDir   string
	json       bool
}

// env is what a command runs with.
type env struct {
	ctx    context.Context
	g      globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// Run runs one mooring command.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g, rest, err := parseGlobals(args)
	if err != nil {
		return err
	}
	e := &env{ctx: ctx, g: g, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", ErrUsage)
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "volume", "volumes":
		return e.volume(rest)
	case "pools", "pool":
		return e.pools(rest)
	case "attachments":
		if len(rest) > 0 && rest[0] != "ls" {
			return fmt.Errorf("%w: attachments ls", ErrUsage)
		}
		return e.attachments()
	case "gc":
		return e.gc()
	case "doctor":
		return e.doctor()
	case "metrics":
		return e.metrics(rest)
	case "version":
		return e.print(map[string]string{"version": version.Version}, func(w io.Writer) {
			fmt.Fprintln(w, "mooring", version.String())
		})
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, cmd)
}

// parseGlobals takes --config, --state-dir and --json out of args wherever
// they are, so `mooring volume ls --json` and `mooring --json volume ls`
// both work.
func parseGlobals(args []string) (globals, []string, error) {
	var g globals
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			rest = append(rest, a)
			continue
		}
		switch name {
		case "json":
			g.json = true
		case "config", "state-dir":
			if !hasValue {
				if i+1 >= len(args) {
					return g, nil, fmt.Errorf("%w: --%s needs a value", ErrUsage, name)
				}
				i++
				value = args[i]
			}
			if name == "config" {
				g.configPath = value
			} else {
				g.stateDir = value
			}
		default:
			rest = append(rest, a)
		}
	}
	return g, rest, nil
}

// config loads the admin config with the command line's overrides.
func (e *env) config() (*config.Config, error) {
	cfg, err := config.Load(e.g.configPath)
	if err != nil {
		return nil, err
	}
	if e.g.stateDir != "" {
		cfg.StateDir = e.g.stateDir
	}
	return cfg, nil
}

func (e *env) manager() (*volume.Manager, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	return volume.New(cfg)
}

// flags returns a FlagSet for a subcommand that reports errors, not usage
// dumps, and never exits.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses a subcommand's flags, allowing them after positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUsage, fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
