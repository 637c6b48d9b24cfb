// Package integration runs mooring's front-ends against real runtimes
// (runc, crun, podman, docker, containerd) and real loop devices, as root.
// Under CI=true a missing prerequisite fails the test instead of skipping.
// The harness is internal/lab.
package integration
