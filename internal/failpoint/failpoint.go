package failpoint

import (
	"os"

	"golang.org/x/sys/unix"
)

// EnvVar selects the step to crash at.
const EnvVar = "MOORING_FAILPOINT"

// Hit kills the process with SIGKILL when EnvVar names step.
func Hit(step string) {
	if os.Getenv(EnvVar) == step {
		_ = unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL is not delivered synchronously; never return
	}
}
