package runtimecmd

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Invocation is what mooring needs to know of a runtime command line.
type Invocation struct {
	Root      string // --root, absolute; empty means the runtime's default
	Log       string // --log
	LogFormat string // --log-format: text or json
	Command   string // create, run, delete, state, ...
	Bundle    string // create/run: --bundle, else the working directory
	Config    string // create/run: crun's --config (a spec file other than config.json)
	PIDFile   string // create/run: --pid-file
	ID        string // the container id
}

// flagSet says which options a position takes: those with a value and
// the booleans. An option in neither is refused where it matters: taking
// its value for the container id would act on another container.
type flagSet struct {
	values, bools map[string]bool
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Global options of runc and crun.
var globalFlags = flagSet{
	values: set("root", "log", "log-format", "criu", "rootless", "cgroup-manager", "log-level"),
	bools:  set("debug", "systemd-cgroup", "help", "h", "version", "v"),
}

// createFlags are create's options in runc >= 1.2 (--pidfd-socket) and
// crun (--config/-f); run adds its own.
var createFlags = flagSet{
	values: set("bundle", "b", "console-socket", "pidfd-socket", "pid-file", "preserve-fds", "config", "f"),
	bools:  set("no-pivot", "no-new-keyring", "help", "h"),
}

var runFlags = flagSet{
	values: createFlags.values,
	bools:  set("no-pivot", "no-new-keyring", "detach", "d", "keep", "no-subreaper", "help", "h"),
}

var deleteFlags = flagSet{values: set(), bools: set("force", "f", "help", "h")}

// strictCommands are the verbs mooring acts on: their options must all be
// known and they take exactly one positional argument, the id.
var strictCommands = map[string]flagSet{"create": createFlags, "run": runFlags, "delete": deleteFlags}

// Parse reads a runtime command line (without argv[0]). cwd resolves a
// relative bundle or root. Every verb but create, run and delete is read
// only as far as the shim needs (it passes them through).
func Parse(args []string, cwd string) (Invocation, error) {
	inv := Invocation{LogFormat: "text"}
	i := 0
	for ; i < len(args); i++ {
		name, value, ok, consumed, err := flag(args, i, globalFlags, true)
		if err != nil {
			return inv, err
		}
		if !ok {
			break
		}
		i += consumed
		switch name {
		case "root":
			inv.Root = value
		case "log":
			inv.Log = value
		case "log-format":
			inv.LogFormat = value
		}
	}
	inv.Root = absolute(inv.Root, cwd)
	if i == len(args) {
		return inv, nil // runc --version, runc --help
	}
	inv.Command = args[i]
	flags, strict := strictCommands[inv.Command]
	var positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		if rest[j] == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		name, value, ok, consumed, err := flag(rest, j, flags, strict)
		if err != nil {
			return inv, fmt.Errorf("%s: %w", inv.Command, err)
		}
		if !ok {
			positional = append(positional, rest[j])
			continue
		}
		j += consumed
		switch name {
		case "bundle", "b":
			inv.Bundle = value
		case "pid-file":
			inv.PIDFile = value
		case "config", "f":
			if inv.Command != "delete" {
				inv.Config = value
			}
		}
	}
	if strict && len(positional) != 1 && !(len(positional) == 0 && helpAsked(rest)) {
		return inv, fmt.Errorf("%s takes exactly one container id, got %d argument(s) %q", inv.Command, len(positional), positional)
	}
	if len(positional) > 0 {
		inv.ID = positional[0]
	}
	if inv.Command == "create" || inv.Command == "run" {
		inv.Bundle = absolute(inv.Bundle, cwd)
		if inv.Bundle == "" {
			inv.Bundle = cwd
		}
		inv.PIDFile = absolute(inv.PIDFile, cwd)
	}
	return inv, nil
}

func helpAsked(args []string) bool {
	for _, a := range args {
		if a == "--help" || a == "-h" {
			return true
		}
	}
	return false
}

func absolute(p, cwd string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(cwd, p)
}

// flag reads args[i] as an option: --name, -name, --name=value or --name
// value (when flags says it takes one). consumed is 1 when the value was
// the next argument. With strict, an option flags does not know is an
// error.
func flag(args []string, i int, flags flagSet, strict bool) (name, value string, ok bool, consumed int, err error) {
	a := args[i]
	if len(a) < 2 || a[0] != '-' {
		return "", "", false, 0, nil
	}
	name = strings.TrimLeft(a, "-")
	if n, v, hasValue := strings.Cut(name, "="); hasValue {
		if strict && !flags.values[n] && !flags.bools[n] {
			return "", "", false, 0, fmt.Errorf("unknown option %s", a)
		}
		return n, v, true, 0, nil
	}
	if !flags.values[name] {
		if strict && !flags.bools[name] {
			return "", "", false, 0, fmt.Errorf("unknown option %s (mooring-runtime cannot tell whether it takes a value)", a)
		}
		return name, "", true, 0, nil
	}
	if i+1 >= len(args) {
		return "", "", false, 0, fmt.Errorf("option %s needs a value", a)
	}
	return name, args[i+1], true, 1, nil
}

// StateRoot is where the runtime keeps container state: root, or the
// runtime's default for root, /run/<name> (runc: /run/runc, crun:
// /run/crun, youki: /run/youki).
func StateRoot(root, runtime string) string {
	if root != "" {
		return root
	}
	return filepath.Join("/run", filepath.Base(runtime))
}
