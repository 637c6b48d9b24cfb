// Package devices owns every side effect on block devices: loop devices
// (attach, detach, find by tag) through ioctls, the admin's block devices,
// filesystem probe/format/check through external tools, and mount/unmount by
// syscall.
//
// The core (package volume) uses it only through the small interfaces in
// this file so that its unit tests can run against fakes; the real
// implementations are tested as root against real loop devices.
package devices
