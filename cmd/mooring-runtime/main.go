// Command mooring-runtime is a runc drop-in that gives containers their
// mooring volumes. See package shim.
package main

import (
	"context"
	"os"

	"github.com/mooring-dev/mooring/shim"
)

func main() {
	err := shim.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	os.Exit(shim.ExitCode(err))
}
