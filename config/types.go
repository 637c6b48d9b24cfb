package config

import "time"

// Drivers a pool can use.
const (
	// DriverLoop keeps each volume as a sparse image file in the pool
	// directory, attached through a loop device.
	DriverLoop = "loop"
	// DriverBlock hands out existing block devices from the admin's list.
	DriverBlock = "block"
	// DriverRBD keeps each volume as a Ceph RBD image that every node of
	// the cluster can attach, one writer at a time.
	DriverRBD = "rbd"
)

// Well-known locations and names.
const (
	DefaultPath      = "/etc/mooring/config.toml"
	EnvPath          = "MOORING_CONFIG"
	DefaultStateDir  = "/var/lib/mooring"
	DefaultRunDir    = "/run/mooring"
	DefaultPoolName  = "default"
	DefaultTenant    = "default"
	DefaultEnvTenant = "env"
	DefaultLogFile   = "/var/log/mooring.log"
	AnyTenant        = "*"
)

// Config is the validated admin policy.
type Config struct {
	// StateDir holds the journal (volume and attachment records) and, for
	// the default pool, the images. It must survive reboots.
	StateDir string
	// RunDir holds staging mounts (RunDir/mnt/<volume-id>) and locks that
	// must not survive reboots.
	RunDir string
	// LogFile is where the hook and the shim log (their stderr is often
	// swallowed by the runtime).
	LogFile string
	// DefaultPool serves requests that name no pool.
	DefaultPool string
	// DefaultTenant is the tenant when the front-end has no unforgeable
	// source for one (plain runc, podman, docker).
	DefaultTenant string
	// AllowEnvRequests lets the shim read requests from the container env
	// MOORING_VOLUMES (for engines without annotations, e.g. docker < 24).
	AllowEnvRequests bool
	// EnvTenant is the tenant of env requests: the image's author may set
	// MOORING_VOLUMES, so they never reach DefaultTenant's volumes.
	EnvTenant string
	// Runtimes lists the real OCI runtimes the shim may exec, by absolute
	// path or name; the first one found wins.
	Runtimes []string
	// NodeName names this host in shared pools' leases and takeover
	// records (default: the host name).
	NodeName string
	// Pools by name.
	Pools map[string]Pool
}

// Loop device caching of a loop pool (key cache).
const (
	CacheDirect   = "direct"
	CacheBuffered = "buffered"
)

// RBD is how a node reaches the Ceph cluster of an rbd pool.
type RBD struct {
	// CephConf is the ceph.conf path; ClientID the Ceph client id without
	// "client." (its keyring is found through CephConf).
	CephConf string
	ClientID string
	// RadosPool holds the images.
	RadosPool string
	// Map is the data path: auto, krbd, nbd or fuse.
	Map string
	// Timeout bounds every call into the cluster.
	Timeout time.Duration
	// TakeoverAfter, when set, lets a node take a volume over (fence the
	// holder) once the holder has had no watcher on the image for this
	// long; zero: takeover only by mooring volume fence.
	TakeoverAfter time.Duration
}

// Pool is one admin-defined pool of volumes.
type Pool struct {
	Name string
	// Driver is DriverLoop, DriverBlock or DriverRBD.
	Driver string
	// Directory holds the image files (loop).
	Directory string
	// Devices lists the block devices this pool may hand out (block).
	Devices []string
	// DefaultSize and MaxSize in bytes.
	DefaultSize int64
	MaxSize     int64
	// DefaultFS is ext4, xfs or btrfs.
	DefaultFS string
	// CreateOnDemand creates an unknown volume on first request; when false
	// volumes must exist (mooring volume create).
	CreateOnDemand bool
	// GrowOnRequest grows an existing volume at Acquire when a request
	// asks for a larger size (within MaxSize); off, a larger size is
	// ignored for an existing volume.
	GrowOnRequest bool
	// Tenants that may use the pool; AnyTenant allows all.
	Tenants []string
	// Filesystems a volume of this pool may be made with; DefaultFS is
	// one of them.
	Filesystems []string
	// Capacity bounds the sum of the sizes of the pool's volumes, in
	// bytes; 0 means the size of the pool directory's filesystem minus
	// its reserve (loop) or the sum of the devices' sizes (block).
	Capacity int64
	// MaxVolumes and MaxBytes bound what one tenant holds in this pool
	// (count and sum of sizes); 0 means no limit.
	MaxVolumes int
	MaxBytes   int64
	// Preallocate makes loop images fully allocated (fallocate) instead
	// of sparse.
	Preallocate bool
	// Cache is how a loop pool's devices use the host's page cache:
	// CacheDirect (default) or CacheBuffered.
	Cache string
	// Linger keeps a volume staged (mounted, its device attached) this
	// long after its last release, so a container started again within
	// it skips attach, check and mount; 0 unstages at once. Pools inherit
	// the top-level linger, except rbd pools (a lingering volume keeps
	// its lease), which linger only when their own key says so.
	Linger time.Duration
	// RBD is set for DriverRBD pools.
	RBD *RBD
}

// shared reports whether more than one tenant may use the pool.
func (p Pool) shared() bool { return len(p.Tenants) > 1 || p.Allows(AnyTenant) }
