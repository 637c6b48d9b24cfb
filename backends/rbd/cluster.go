package rbd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// DefaultTimeout bounds each call to the cluster when Cluster.Timeout is
// zero. A stopped OSD blocks librbd clients until it resumes, so every call
// needs a bound.
const DefaultTimeout = 30 * time.Second

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the image does not exist.
	ErrNotFound = errors.New("rbd image not found")
	// ErrExists: an image of that name already exists.
	ErrExists = errors.New("rbd image already exists")
	// ErrHeld: another node holds the volume's lease (see *HeldError).
	ErrHeld = errors.New("volume is held by another node")
	// ErrNotHolder: this node does not hold the lease it tried to use.
	ErrNotHolder = errors.New("this node does not hold the volume's lease")
)

// Cluster is one node's view of one RBD pool: how to reach it and who this
// node is. The zero Timeout means DefaultTimeout.
type Cluster struct {
	// Conf is the ceph.conf path; ClientID the Ceph client id without the
	// "client." prefix (its keyring is found through Conf).
	Conf     string
	ClientID string
	// Pool is the RADOS pool holding the images.
	Pool string
	// Node names this node in leases and audit records.
	Node    string
	Timeout time.Duration
}

// Validate checks the fields a wrong config would get wrong.
func (c *Cluster) Validate() error {
	switch {
	case c.Conf == "":
		return errors.New("rbd: no ceph config file")
	case c.ClientID == "":
		return errors.New("rbd: no ceph client id")
	case c.Pool == "":
		return errors.New("rbd: no RADOS pool")
	case !vocab.IsHostName(c.Node):
		return fmt.Errorf("rbd: node name %q: not a host name", c.Node)
	}
	return nil
}

func (c *Cluster) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// clientArgs are the arguments every rbd/ceph call starts with: the
// config, the identity, and the client's own op timeouts, so that the
// client gives up on a stuck OSD or mon itself before the kill.
func (c *Cluster) clientArgs() []string {
	secs := strconv.Itoa(max(1, int(c.timeout().Seconds())-1))
	return []string{"--conf", c.Conf, "--id", c.ClientID,
		"--rados-osd-op-timeout", secs, "--rados-mon-op-timeout", secs, "--client-mount-timeout", secs}
}

// spec is POOL/IMAGE.
func (c *Cluster) spec(image string) string { return c.Pool + "/" + image }

// rbd runs the rbd CLI, bounded by the timeout.
func (c *Cluster) rbd(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, "rbd", args)
}

// ceph runs the ceph CLI, bounded by the timeout.
func (c *Cluster) ceph(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, "ceph", args)
}

func (c *Cluster) run(ctx context.Context, tool string, args []string) ([]byte, error) {
	out, err := devices.RunTool(ctx, c.timeout(), tool, append(c.clientArgs(), args...)...)
	if errno(err) == etimedout {
		// The client's own op timeout fired first: the same condition.
		err = fmt.Errorf("%w: %w", err, context.DeadlineExceeded)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("ceph cluster did not answer (%s %s): %w", tool, args[0], err)
	}
	return out, err
}

// errno is the error number an rbd/ceph call failed with (they exit with
// it), or 0.
func errno(err error) int {
	var te *devices.ToolError
	if errors.As(err, &te) {
		return te.ExitCode
	}
	return 0
}

// Linux errno values the CLIs exit with.
const (
	enoent    = 2
	ebusy     = 16
	eexist    = 17
	etimedout = 110
)
