package backends

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// Errors a backend returns for the core (and its callers) to branch on.
var (
	// ErrNotFound: a shared store has no record of the volume.
	ErrNotFound = errors.New("volume not found")
	// ErrInUse: the backing store is in use elsewhere (outside mooring,
	// or by another node).
	ErrInUse = errors.New("volume is in use")
	// ErrTooLarge: the store cannot give the size asked.
	ErrTooLarge = errors.New("size over pool maximum")
)

// Volume is what a backend knows of a volume: the core's record carries
// it.
type Volume struct {
	// ID is the volume's stable id: tags and node-local paths use it.
	ID     string
	Tenant string
	Name   string
	Pool   string
	// Backing is the image file (loop), the device path (block) or the
	// image name (rbd).
	Backing string
	// Major and Minor are a block device's numbers when the volume was
	// made on it.
	Major, Minor uint32
	Size         int64
}

// Attached is a volume's block device on this node.
type Attached struct {
	Device string
	// Hold keeps the device until the caller has mounted it (loop devices
	// autoclear when their last user goes). Never nil.
	Hold io.Closer
	// State is what Detach needs later, recorded with the claim in the
	// node's journal (for example the pid and start time of a userspace
	// helper serving the device); nil when the device says it all.
	State json.RawMessage
}

// Backend makes, attaches and deletes the backing store of a pool's
// volumes. Callers hold the volume's lock around every call naming a
// volume.
type Backend interface {
	// Create makes v's backing store and fills in what it chose: Backing,
	// and for a device its size and numbers. taken lists the Backing of
	// the pool's existing volumes.
	Create(ctx context.Context, v *Volume, taken []string) error
	// Delete removes the backing store with its data; a missing one is
	// not an error.
	Delete(ctx context.Context, v Volume) error
	// Attach makes v a block device on this node.
	Attach(ctx context.Context, v Volume) (Attached, error)
	// Detach undoes Attach: device and state as Attach returned them, or
	// empty to detach whatever this node has attached for v. A device
	// something else still holds is left to detach by itself.
	Detach(ctx context.Context, v Volume, device string, state json.RawMessage) error
	// Attached lists the devices this node has attached for v.
	Attached(ctx context.Context, v Volume) ([]string, error)
	// CheckStage refuses to stage v when its store could run out of room
	// under the container's writes.
	CheckStage(ctx context.Context, v Volume) error
	// Capacity is what the pool can hold when the admin set no capacity.
	Capacity(ctx context.Context) (int64, error)
	// Used is what v really takes in its store.
	Used(ctx context.Context, v Volume) (int64, error)
	// FormatsOnlyZeroed says a device without a signature is formatted
	// only when its ends read back as zeros: the admin's devices may hold
	// data blkid cannot name.
	FormatsOnlyZeroed() bool
}

// Records is implemented by backends whose pools are shared by many
// nodes: the volume's record lives with the volume, so every node sees the
// same truth and a lost node loses nothing.
type Records interface {
	// ReadRecord decodes the record of tenant/name into v; ErrNotFound
	// when the pool has no such volume.
	ReadRecord(ctx context.Context, tenant, name string, v any) error
	// WriteRecord stores v as the record of tenant/name.
	WriteRecord(ctx context.Context, tenant, name string, v any) error
	// Records lists the records of every volume in the pool.
	Records(ctx context.Context) ([]json.RawMessage, error)
}

// Leased is implemented by backends of pools many nodes share, where one
// node at a time holds a volume (its lease).
type Leased interface {
	// Lost says why this node may no longer use a device it attached for
	// v (the lease passed to another node, the helper serving it died),
	// or nil while it may.
	Lost(ctx context.Context, v Volume, state json.RawMessage) error
	// Fence takes v over for this node from the node holding it, which
	// is dead or cut off: that node's writes fail from here on. It
	// returns a line saying what was done, for the log and the admin.
	Fence(ctx context.Context, v Volume) (string, error)
	// AttachedHere lists the volumes (tenant and name) this node has
	// attached, recorded or not.
	AttachedHere(ctx context.Context) ([]Volume, error)
	// Lease says which node holds v and the takeovers it went through.
	Lease(ctx context.Context, v Volume) (LeaseStatus, error)
}

// LeaseStatus is who holds a shared volume, and its takeover history.
type LeaseStatus struct {
	// Holder is the node holding the lease, empty when free.
	Holder string    `json:"holder,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Takeovers are the fences the volume went through, oldest first,
	// one line each (who, when, from whom, what was blocklisted).
	Takeovers []string `json:"takeovers,omitempty"`
}

// Checker is implemented by backends that can say whether this node can
// use the pool (mooring doctor): what they found, or why not.
type Checker interface {
	Check(ctx context.Context) (string, error)
}
