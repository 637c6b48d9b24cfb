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
	// From is VOLUME@SNAPSHOT: a missing volume is created as a clone of
	// that snapshot (same tenant). Ignored when the volume exists.
	From string `json:"from,omitempty"`
}
