// Package failpoint lets crash tests kill a mooring process at a named step
// of an operation, the way containerd's failpoints do: when the environment
// variable MOORING_FAILPOINT names the step, the process sends itself
// SIGKILL there.
//
// The code exists only in binaries built with the build tag "failpoints"
// (make test and make fuzz set it); without the tag Hit does nothing and
// the variable is never read, so release binaries (make build) cannot be
// made to crash by their environment. make build checks that.
package failpoint
