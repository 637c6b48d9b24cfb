// Package shim is mooring-runtime, a drop-in for runc that gives containers
// their volumes by editing the OCI spec before the real runtime mounts
// anything: docker (--add-runtime), containerd (runc BinaryName), podman
// (--runtime) and CRI-O can all point at it.
//
// Only create and run are looked at: if the container's annotations (or,
// when the admin allows it, its MOORING_VOLUMES env) ask for volumes, the
// shim acquires them, adds a bind mount per volume from its staging
// directory and a poststop hook that releases, writes config.json
// atomically keeping every field it does not know, and execs the real
// runtime with the original arguments. delete runs the real runtime, then
// releases. Every other verb, and containers without a request, pass
// straight through. The shim never writes to stdout (runtimes' callers
// parse it); its errors go to runc's --log in --log-format, to stderr and
// to mooring's log.
package shim
