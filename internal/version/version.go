// Package version holds the version stamped into the binaries at build
// time (make build sets Version with -ldflags -X).
package version

import "runtime"

// Version of mooring; "dev" for builds outside make.
var Version = "dev"

// String is the version with the Go toolchain that built it.
func String() string { return Version + " (" + runtime.Version() + ")" }
