package rbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/process"
)

// Map is how a node turns an image into a block device.
type Map string

// Data paths. MapAuto resolves to one of the others per node.
const (
	MapAuto   Map = "auto"
	MapKernel Map = "krbd" // rbd device map: the kernel's rbd driver
	MapNBD    Map = "nbd"  // rbd-nbd: librbd in a daemon behind /dev/nbdN
	MapFUSE   Map = "fuse" // a FUSE export of the image, loop device on top
)

// ErrHelperDead: the userspace process serving an attached volume is gone;
// the volume's I/O fails until it is detached and attached again.
var ErrHelperDead = errors.New("the volume's userspace helper is not running")

// Detect picks the data path "auto" stands for on this node: kernel rbd
// where sysBus/rbd exists (the rbd module is loaded), rbd-nbd where
// devDir/nbd0 exists, otherwise the FUSE export, which needs no kernel
// module but /dev/fuse.
func Detect(sysBus, devDir string) Map {
	if _, err := os.Stat(filepath.Join(sysBus, "rbd")); err == nil {
		return MapKernel
	}
	if nbds, _ := filepath.Glob(filepath.Join(devDir, "nbd[0-9]*")); len(nbds) > 0 {
		return MapNBD
	}
	return MapFUSE
}

// Attachment is one image attached on this node, as a node journal would
// record it.
type Attachment struct {
	Image  string `json:"image"`
	Map    Map    `json:"map"`
	Device string `json:"device"`
	// LoopTag is the loop device's tag (FUSE data path).
	LoopTag string `json:"loop_tag,omitempty"`
	// Helper is the userspace process serving the image (FUSE, rbd-nbd).
	Helper *Helper `json:"helper,omitempty"`
}

// Helper is a userspace process that serves an image and outlives the
// command that started it.
type Helper struct {
	Tool string `json:"tool"`
	process.ID
	// Mount is the FUSE mount point (FUSE data path).
	Mount string `json:"mount,omitempty"`
}

// DataPath attaches images as block devices on this node.
type DataPath struct {
	Cluster *Cluster
	// Map is the data path, never MapAuto (NewDataPath resolves it).
	Map Map
	// FUSETool is "qemu-storage-daemon" or "rbd-fuse" (FUSE data path).
	FUSETool string
	// RunDir holds the FUSE mount points and helper logs: node-local,
	// private to mooring.
	RunDir string
	Loops  devices.Loops
}

// FUSE export tools in order of preference: qemu-storage-daemon is 3-4x
// faster than rbd-fuse on 4k random I/O.
const (
	ToolQSD     = "qemu-storage-daemon"
	ToolRBDFuse = "rbd-fuse"
)

// NewDataPath returns the data path m (MapAuto: Detect on this host) for
// the cluster, with its node-local files under runDir.
func NewDataPath(c *Cluster, m Map, runDir string) (*DataPath, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if m == MapAuto || m == "" {
		m = Detect("/sys/bus", "/dev")
	}
	d := &DataPath{Cluster: c, Map: m, RunDir: filepath.Join(runDir, "rbd"), Loops: devices.NewLoops()}
	switch m {
	case MapKernel, MapNBD:
	case MapFUSE:
		for _, tool := range []string{ToolQSD, ToolRBDFuse} {
			if _, err := devices.LookTool(tool); err == nil {
				d.FUSETool = tool
				break
			}
		}
		if d.FUSETool == "" {
			return nil, errors.New("rbd FUSE data path: neither qemu-storage-daemon (qemu-system-common, qemu-block-extra) nor rbd-fuse is installed")
		}
	default:
		return nil, fmt.Errorf("rbd map %q: must be auto, krbd, nbd or fuse", m)
	}
	// These strings end up inside qemu's comma-separated option syntax.
	for _, s := range []string{c.Conf, c.ClientID, c.Pool, d.RunDir} {
		if strings.ContainsAny(s, ",\n") {
			return nil, fmt.Errorf("rbd data path: %q: commas and newlines are not allowed", s)
		}
	}
	return d, nil
}

// Attach makes the image a block device on this node; the caller must hold
// the image's lease. The returned closer is the caller's hold on the
// device until it has mounted it (loop devices autoclear when the last
// user goes). It records the data path's client addresses in the image for
// a later fence.
func (d *DataPath) Attach(ctx context.Context, image, tag string) (*Attachment, io.Closer, error) {
	before, err := d.Cluster.Watchers(ctx, image)
	if err != nil {
		return nil, nil, fmt.Errorf("attach %s: %w", image, err)
	}
	var a *Attachment
	var hold io.Closer = nopCloser{}
	if d.Map == MapFUSE {
		a, hold, err = d.attachFUSE(ctx, image, tag)
	} else {
		a, err = d.mapDevice(ctx, image)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("attach %s: %w", image, err)
	}
	now, err := d.Cluster.Watchers(ctx, image)
	if err == nil {
		err = d.Cluster.recordClients(ctx, image, before, now)
	}
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("attach %s: %w", image, err), hold.Close(), d.Detach(ctx, a))
	}
	return a, hold, nil
}

// Detach undoes Attach; the filesystem on the device must be unmounted.
// It touches nothing in the cluster, so a fenced node can tear down.
// Detaching what is already gone is not an error.
func (d *DataPath) Detach(ctx context.Context, a *Attachment) error {
	if a.Map == MapFUSE {
		return d.detachFUSE(ctx, a)
	}
	return d.unmapDevice(ctx, a)
}

// Check reports ErrHelperDead when the process serving a an attachment is
// gone (kernel rbd has none).
func (d *DataPath) Check(a *Attachment) error {
	if a.Helper != nil && !a.Helper.Alive() {
		return fmt.Errorf("volume image %s: %s (pid %d): %w", a.Image, a.Helper.Tool, a.Helper.PID, ErrHelperDead)
	}
	return nil
}

// Leftovers returns what this node's data path has attached (helpers,
// FUSE mounts, mapped devices), for reconcile to compare with its journal
// and Detach what nobody owns.
func (d *DataPath) Leftovers(ctx context.Context) ([]Attachment, error) {
	if d.Map == MapFUSE {
		return d.fuseLeftovers()
	}
	return d.mappedDevices(ctx)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
