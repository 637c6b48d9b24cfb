//go:build failpoints

package failpoint

import (
	"os"

	"golang.org/x/sys/unix"
)

// Enabled says whether failpoints are compiled in.
const Enabled = true

// Hit kills the process with SIGKILL when EnvVar names step.
func Hit(step string) {
	if os.Getenv(EnvVar) == step {
		_ = unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL is not delivered synchronously; never return
	}
}

// Env lists the environment a process that clears its own must keep for
// failpoints to work.
func Env() []string { return []string{EnvVar} }
