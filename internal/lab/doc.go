// Package lab is the integration-test harness: it builds mooring's
// binaries, a busybox root filesystem, runc bundles, scratch mooring
// configs, podman environments and a single-node Ceph cluster
// (SharedCeph: one per test process, stopped by Main), all under
// temporary directories, and
// checks after each test that no loop device or mount it made is left.
//
// Tests using it need root and the tools from `make prereqs tools`; a
// missing prerequisite skips locally and fails under CI=true
// (internal/testenv). It is for tests only.
package lab
