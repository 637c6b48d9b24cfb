// Package procstat reads what identifies a process across pid reuse: its
// state and start time from /proc/<pid>/stat. It is a leaf: the core's
// liveness checks and the namespace entry both use it.
package procstat
