package volume

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/backends"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound     = backends.ErrNotFound
	ErrInUse        = backends.ErrInUse
	ErrNotAllowed   = errors.New("tenant not allowed in pool")
	ErrTooLarge     = backends.ErrTooLarge
	ErrExists       = errors.New("volume already exists")
	ErrNotFormatted = errors.New("refusing to format")
	ErrUUIDMismatch = errors.New("filesystem UUID does not match the volume record")
	ErrNoCreate     = errors.New("pool does not create volumes on demand")
	ErrInvalidOwner = errors.New("invalid owner")
)

// Owner is who holds an attachment: one container, known by its key
// (Frontend, Scope, ID; see Key) and proven alive by PID and PIDStart or
// StatePath.
type Owner struct {
	// ID is the container id, unique only within its Scope.
	ID string `json:"id"`
	// Scope is where ID is unique: the runtime's state root (runc
	// --root) for the hook and the shim, the pod's namespace for NRI.
	Scope string `json:"scope,omitempty"`
	// Tenant scopes the volume names (Kubernetes namespace, or the
	// config's default tenant).
	Tenant string `json:"tenant"`
	// Frontend that acquired: "hook", "shim", "nri", "cli".
	Frontend string `json:"frontend,omitempty"`
	// PID and PIDStart (start time in clock ticks, /proc/<pid>/stat field
	// 22) identify the container's process when known; gc treats the owner
	// as live while that process exists.
	PID      int    `json:"pid,omitempty"`
	PIDStart uint64 `json:"pidStart,omitempty"`
	// StatePath, when set, is a file or directory whose existence proves
	// the container still exists (the runtime's state directory); used by
	// gc when the process is gone or not known.
	StatePath string `json:"statePath,omitempty"`
}

// VolumeRecord is the journal's record of one volume.
type VolumeRecord struct {
	ID        string `json:"id"` // stable, used in tags and staging paths
	Tenant    string `json:"tenant"`
	Name      string `json:"name"`
	Pool      string `json:"pool"`
	Driver    string `json:"driver"`
	Backing   string `json:"backing"` // image file (loop) or device path (block)
	Major     uint32 `json:"major,omitempty"`
	Minor     uint32 `json:"minor,omitempty"`
	Size      int64  `json:"size"`
	FS        string `json:"fs"`
	FSUUID    string `json:"fsUUID"`
	Formatted bool   `json:"formatted"` // formatted by us
	// Mode is annotations.ModeBlock for a raw block volume (no FS, never
	// formatted or checked), empty for a filesystem; fixed at creation.
	Mode string `json:"mode,omitempty"`
	// Used is set, under the volume lock, before the first claim that did
	// not create the volume is recorded: from then on the volume may hold
	// someone's data and a failed Acquire never discards it.
	Used    bool      `json:"used,omitempty"`
	Created time.Time `json:"created"`
	// Data services (resize.go, snapshot.go, export.go).
	DataState
}

// IsBlock reports whether the volume is a raw block volume.
func (v VolumeRecord) IsBlock() bool { return v.Mode == annotations.ModeBlock }

// Key is the volume's name as tenants and admins write it: tenant/name.
func (v VolumeRecord) Key() string { return v.Tenant + "/" + v.Name }

// Step of an attachment: the intent, recorded before the first step of
// staging, and the completion. (Journals of earlier versions may also
// hold "mounting" and "releasing": read as not staged, like attaching.)
type Step string

const (
	StepAttaching Step = "attaching"
	StepMounted   Step = "mounted"
)

// Attachment is the journal's record of one owner's claim on one volume.
type Attachment struct {
	Owner    Owner  `json:"owner"`
	VolumeID string `json:"volumeID"`
	Volume   string `json:"volume"` // tenant/name, for humans
	Device   string `json:"device,omitempty"`
	// Pool is the volume's pool, so a claim on a shared pool's volume can
	// be torn down without reading the cluster (a fenced node).
	Pool string `json:"pool,omitempty"`
	// Backend is what the pool's driver needs to detach the device (for
	// example the pid and start time of a userspace helper).
	Backend json.RawMessage `json:"backend,omitempty"`
	// Major and Minor of Device, for raw block volumes: the numbers the
	// container's device node and cgroup rule get.
	Major    uint32    `json:"major,omitempty"`
	Minor    uint32    `json:"minor,omitempty"`
	Staging  string    `json:"staging"`
	Target   string    `json:"target"`
	ReadOnly bool      `json:"readOnly,omitempty"`
	Step     Step      `json:"step"`
	Since    time.Time `json:"since"`

	// file is the journal file the record was read from (records written
	// before owners had scopes are named by the id alone).
	file string
}

// Staged is a volume ready at its staging directory, for a front-end to
// bring into the container at Target.
type Staged struct {
	VolumeID string
	Volume   string // tenant/name
	Source   string // staging directory on the host (a mount point)
	Target   string // path inside the container
	ReadOnly bool
	FS       string
	// Block is set for a raw block volume: the container gets this
	// device's node at Target instead of a mount of Source (empty).
	Block *BlockDevice
}

// BlockDevice is the host device of a staged raw block volume: exactly
// the volume's device (its loop device, or the pool device it was made
// on), never one a request named.
type BlockDevice struct {
	Path         string
	Major, Minor uint32
}

// MountOptions are the bind mount options that bring s into a container:
// recursive as runtimes bind volumes, never setuid programs nor
// device files from tenant data, read-only when asked.
func (s Staged) MountOptions() []string {
	opts := []string{"rbind", "nosuid", "nodev"}
	if s.ReadOnly {
		opts = append(opts, "ro")
	}
	return opts
}

// Request is one volume an owner asks for.
type Request = annotations.Volume

// ReconcileReport says what Reconcile did.
type ReconcileReport struct {
	Released  []Attachment `json:"released"`       // claims whose owner was gone
	Lost      []LostClaim  `json:"lost,omitempty"` // claims of live owners on volumes this node lost
	Detached  []string     `json:"detached"`       // orphan devices detached
	Unmounted []string     `json:"unmounted"`      // orphan staging mounts removed
	Kept      int          `json:"kept"`           // claims of live owners
}

// LostClaim is a live container's claim Reconcile released because this
// node lost the volume (another node took it over, its helper died).
type LostClaim struct {
	Attachment
	Reason string `json:"reason"`
}
