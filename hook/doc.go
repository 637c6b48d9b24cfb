// Package hook is the OCI hook front-end: `mooring hook createRuntime`
// (alias prestart) and `mooring hook poststop`, for runc config.json hooks,
// podman and CRI-O hooks.d.
//
// createRuntime reads the OCI state from stdin, the bundle's config.json,
// and the container's request from its annotations; it acquires the volumes
// (owner: the container id, identified by its init process) and mounts each
// into the container's mount namespace (package nsmount). On any failure it
// undoes its own work before exiting non-zero: crun and podman run no
// poststop after a failed create. poststop releases, idempotently.
//
// The hook is tenant-facing: it clears its environment, works from "/",
// reads at most 1 MiB of stdin, decodes the state strictly, and never runs
// or loads anything from the container's root.
package hook
