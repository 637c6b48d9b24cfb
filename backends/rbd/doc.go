// Package rbd is mooring's Ceph RBD driver: volumes as RBD images in a
// RADOS pool, shared by many nodes, written by one node at a time.
//
// It drives the rbd and ceph command-line tools with argv arrays and
// --format json (no cgo: the hook and shim binaries stay static), each
// call bounded by Cluster.Timeout both ways: the client's own op timeouts
// and a kill of the tool's process group. A stopped OSD or an unreachable
// monitor therefore ends a call with an error wrapping
// context.DeadlineExceeded, never a hang.
//
// What lives where:
//   - The image of a tenant's volume is named "mooring.<tenant>.<volume>"
//     (ImageName); both parts are DNS labels, which hold no '.', so the
//     name is reversible and two volumes never share an image.
//   - The volume's record (formatted bit, filesystem, its UUID, size, owner
//     tenant) is image metadata ("mooring.record"), so every node sees the
//     same truth and losing a node loses nothing. A node's own journal
//     holds only its attachments.
//   - The lease is an RBD advisory lock whose cookie is
//     "mooring:<epoch>:<node>" (epoch: Unix nanoseconds when it was taken):
//     the lock add is atomic in the cluster, a second node is refused with
//     the holder's node and since when (*HeldError), and the same node
//     reuses its lease (containers on one node share a volume).
//   - Fence blocklists every client address that could still write (the
//     image's watchers, the data-path addresses the holder recorded at
//     attach, the lock's locker), breaks the lock, takes the lease, and
//     records the takeover (by, at, from, blocklisted) as image metadata.
//
// Image features: only layering. exclusive-lock is left out on purpose:
// it is cooperative (a second librbd writer takes it over at once, so it
// fences nothing), and an advisory lock (the lease) on an image with
// exclusive-lock makes librbd writers retry forever in D state. The
// features that need exclusive-lock (object-map, fast-diff, journaling)
// go with it. One writer is the lease's job plus the blocklist's.
//
// Data paths (DataPath, Map): kernel rbd (`rbd device map`) where
// /sys/bus/rbd exists, rbd-nbd where /dev/nbd* exists, otherwise a FUSE
// export of the image with a loop device (direct I/O) on top:
// qemu-storage-daemon's FUSE export (cache.direct=on) or, when qemu is not
// installed, rbd-fuse. The FUSE helper outlives the command that starts it
// (its own session), is identified by pid and start time, and is stopped
// by Detach without ever hanging: a helper that does not exit on SIGTERM
// (fenced) gets its FUSE connection aborted (so the loop device's I/O
// fails with EIO) and SIGKILL. Leftovers finds helpers and FUSE mounts
// nobody recorded.
//
// The caller sequences: Acquire, Attach, (fsck/format), mount; unmount,
// Detach, Release. Detach touches nothing in the cluster, so a fenced node
// can tear down without disturbing the new holder.
package rbd
