// Package volume is mooring's core: every front-end (hooks, runtime shim,
// NRI plugin, admin CLI) calls it.
//
// It owns the on-disk journal (volume records and attachment records),
// per-volume locks and the volume lifecycle: Acquire creates on demand,
// attaches, checks or formats (first use only), and mounts each requested
// volume at its staging directory; Release drops an owner's claims and
// detaches a volume when its last user leaves; Reconcile releases claims
// whose owner is gone. Every operation is idempotent and never deletes data;
// only Remove (admin) deletes a volume, and only while it is not attached.
//
// Side effects go through package devices' interfaces, so the lifecycle is
// unit-tested against fakes and root-tested against real loop devices.
package volume
