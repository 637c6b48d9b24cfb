// Command mooring is the admin CLI (package cli) and, as
// `mooring hook <stage>`, the OCI hook (package hook): one binary, so the
// hook a runtime runs is always the CLI's version.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mooring-dev/mooring/cli"
	"github.com/mooring-dev/mooring/hook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mooring:", err)
		os.Exit(1)
	}
}

// run dispatches `mooring hook ...` to the hook and the rest to the CLI.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "hook" {
		return hook.Run(ctx, args[1:], stdin, stdout, stderr)
	}
	return cli.Run(ctx, args, stdin, stdout, stderr)
}
