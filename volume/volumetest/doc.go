// Package volumetest provides fakes of the devices the volume core drives,
// for unit tests of the core and of its front-ends (hook, shim, NRI
// plugin) that need no root, loop devices or mkfs.
//
// It is for tests only: real behaviour (loop autoclear races, mkfs and
// fsck, mount propagation) is proved by the root and integration tests.
package volumetest
