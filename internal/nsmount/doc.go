// Package nsmount brings mounts staged on the host into a container's
// mount namespace, for the OCI hook (runc and crun do the spec's mounts
// before createRuntime hooks, so the hook mounts into the container itself).
//
// The order matters for safety: the process is pinned with a pidfd; each
// staged mount is cloned in the host namespace (open_tree) and given
// nosuid, nodev (and rdonly) on the clone; then, on a locked OS thread that
// first left the process's shared fs context (unshare CLONE_FS), the thread
// enters the container's mount namespace through the pidfd, creates each
// target inside the container root without following any symlink out of it
// (openat2 RESOLVE_IN_ROOT via filepath-securejoin's pathrs-lite), and
// attaches the clone with move_mount on that file descriptor. Each target
// path is resolved once; after that only descriptors are used. The thread is
// never returned to the Go scheduler, and it is never the main thread (Go
// would park that one instead of ending it, left in the container's
// namespace, and /proc/self would then describe the container's mounts).
//
// Do not use it for containers that already run untrusted code with the
// target path in reach: it is meant for the createRuntime stage, where the
// container's process has not started the user's program yet.
package nsmount
