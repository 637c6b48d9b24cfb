package shim

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Invocation is what the shim needs to know of a runc command line.
type Invocation struct {
	Root      string // --root; empty means the runtime's default
	Log       string // --log
	LogFormat string // --log-format: text or json
	Command   string // create, run, delete, state, ...
	Bundle    string // create/run: --bundle, else the working directory
	ID        string // the container id
}

// runc's global flags that take a value; the others are booleans.
var globalValueFlags = map[string]bool{"root": true, "log": true, "log-format": true, "criu": true, "rootless": true}

// Flags of create and run that take a value.
var createValueFlags = map[string]bool{"bundle": true, "b": true, "console-socket": true, "pid-file": true, "preserve-fds": true}

// ParseArgs reads a runc command line (without argv[0]). cwd is the
// default bundle. It only understands what the shim needs; everything is
// passed to the real runtime unchanged anyway.
func ParseArgs(args []string, cwd string) (Invocation, error) {
	inv := Invocation{LogFormat: "text"}
	i := 0
	for ; i < len(args); i++ {
		name, value, ok, consumed, err := flag(args, i, globalValueFlags)
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
	if i == len(args) {
		return inv, nil // runc --version, runc --help
	}
	inv.Command = args[i]
	rest := args[i+1:]
	valueFlags := map[string]bool{}
	if inv.Command == "create" || inv.Command == "run" {
		valueFlags = createValueFlags
		inv.Bundle = cwd
	}
	for j := 0; j < len(rest); j++ {
		if rest[j] == "--" {
			if j+1 < len(rest) && inv.ID == "" {
				inv.ID = rest[j+1]
			}
			break
		}
		name, value, ok, consumed, err := flag(rest, j, valueFlags)
		if err != nil {
			return inv, err
		}
		if !ok {
			if inv.ID == "" {
				inv.ID = rest[j]
			}
			continue
		}
		j += consumed
		if name == "bundle" || name == "b" {
			inv.Bundle = value
		}
	}
	if inv.Bundle != "" && !filepath.IsAbs(inv.Bundle) {
		inv.Bundle = filepath.Join(cwd, inv.Bundle)
	}
	return inv, nil
}

// flag reads args[i] as a flag: --name, -name, --name=value or --name
// value (when valueFlags says it takes one). consumed is 1 when the value
// was the next argument.
func flag(args []string, i int, valueFlags map[string]bool) (name, value string, ok bool, consumed int, err error) {
	a := args[i]
	if len(a) < 2 || a[0] != '-' {
		return "", "", false, 0, nil
	}
	name = strings.TrimLeft(a, "-")
	if n, v, hasValue := strings.Cut(name, "="); hasValue {
		return n, v, true, 0, nil
	}
	if !valueFlags[name] {
		return name, "", true, 0, nil
	}
	if i+1 >= len(args) {
		return "", "", false, 0, fmt.Errorf("flag %s needs a value", a)
	}
	return name, args[i+1], true, 1, nil
}
