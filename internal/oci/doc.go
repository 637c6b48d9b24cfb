// Package oci owns what mooring's front-ends do with an OCI bundle: read
// the runtime state a hook gets on stdin (bounded, validated), read
// config.json (bounded, never through a symlink, a regular file), write it
// back atomically, and resolve a mount target inside the container's root
// filesystem under the one target rule every front-end applies.
//
// The target rule: a target is resolved inside the root (openat2
// RESOLVE_IN_ROOT through filepath-securejoin's pathrs-lite, so a symlink
// in the image can never lead out of it), and where it resolves to must be
// strictly below the root and not in /proc, /sys or /dev, where a
// tenant-written filesystem would shadow the kernel's interfaces
// (CVE-2025-31133 class). The hook applies it in the container's mount
// namespace, the shim in the bundle's rootfs before the runtime runs, the
// NRI plugin's createRuntime check on the mounts the runtime made. CheckInRoot
// is the rule on strings; MkdirInRoot and ResolveInRoot apply it to a real
// directory tree.
//
// Parsing and the rule need no privileges and are table-tested; none of it
// mounts anything.
package oci
