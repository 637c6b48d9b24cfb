package annotations

import "github.com/mooring-dev/mooring/internal/vocab"

// Annotation keys, checked in this order; the first present wins.
const (
	// KeyContainerPrefix + <container-name> addresses one container of a pod.
	KeyContainerPrefix = "volumes.mooring.dev/container."
	// KeyPod addresses every container of a pod.
	KeyPod = "volumes.mooring.dev/pod"
	// Key is the plain OCI key (podman --annotation, runc config.json).
	Key = "volumes.mooring.dev"

	// EnvVar carries the same YAML for engines without annotations, when the
	// admin config allows it.
	EnvVar = "MOORING_VOLUMES"

	// MaxValueBytes bounds the annotation value.
	MaxValueBytes = 16 << 10
	// MaxVolumes bounds the number of volumes in one request.
	MaxVolumes = 16
)

// Volume modes: how the volume reaches the container.
const (
	// ModeFilesystem mounts the volume's filesystem at the target (the
	// default).
	ModeFilesystem = "filesystem"
	// ModeBlock gives the container the volume's block device node at the
	// target; mooring never formats or checks it.
	ModeBlock = "block"
)

// IsBlock reports whether the volume asks for a raw block device.
func (v Volume) IsBlock() bool { return v.Mode == ModeBlock }

// Volume is one requested volume, validated.
type Volume struct {
	// Name is the volume's name within its tenant and pool.
	Name string `json:"name"`
	// Target is the absolute, clean path inside the container.
	Target string `json:"target"`
	// Pool is the admin-defined pool; empty means the config's default pool.
	Pool string `json:"pool,omitempty"`
	// Size in bytes used when the volume is created on demand; 0 means the
	// pool default.
	Size vocab.Size `json:"size,omitempty"`
	// FS is ext4, xfs or btrfs; empty means the pool default.
	FS string `json:"fs,omitempty"`
	// ReadOnly mounts the volume read-only inside the container.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Mode is ModeBlock for a raw block device at Target, or empty (or
	// ModeFilesystem) for a mounted filesystem. A volume keeps the mode it
	// was created with.
	Mode string `json:"mode,omitempty"`
	// From is VOLUME@SNAPSHOT: a missing volume is created as a clone of
	// that snapshot (same tenant). Ignored when the volume exists.
	From string `json:"from,omitempty"`
}
