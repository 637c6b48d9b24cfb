// Package failpoint lets crash tests kill a mooring process at a named step
// of an operation, the way containerd's failpoints do: when the environment
// variable MOORING_FAILPOINT names the step, the process sends itself
// SIGKILL there. Nothing else happens in production; hooks and the shim
// clear their environment, so a tenant cannot set it.
package failpoint
