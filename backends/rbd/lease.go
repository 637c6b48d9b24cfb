package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// cookiePrefix starts every lease cookie: "mooring:<epoch>:<node>", epoch
// the lease's start in Unix nanoseconds (so a lease is never confused with
// the same node's earlier one), node last because host names hold no ':'.
const cookiePrefix = "mooring:"

// Lease is a node's hold on an image: an RBD advisory lock whose cookie
// names the node and the epoch. The locker is the client instance that
// took it (a CLI process long gone): the cookie, not the locker, says who
// holds the volume.
type Lease struct {
	Image   string
	Node    string
	Since   time.Time
	Cookie  string
	Locker  string // client.N
	Address string // the locker's address
}

// HeldError refuses a node a volume another node holds.
type HeldError struct {
	Image string
	Node  string
	Since time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("volume image %s is held by node %s since %s (fence it only if that node is dead)",
		e.Image, e.Node, e.Since.UTC().Format(time.RFC3339))
}

func (e *HeldError) Unwrap() error { return ErrHeld }

func (l *Lease) held(image string) *HeldError {
	return &HeldError{Image: image, Node: l.Node, Since: l.Since}
}

func cookie(node string, since time.Time) string {
	return cookiePrefix + strconv.FormatInt(since.UnixNano(), 10) + ":" + node
}

// parseCookie returns the node and epoch a cookie names; ok is false for a
// lock mooring did not take.
func parseCookie(s string) (node string, since time.Time, ok bool) {
	rest, found := strings.CutPrefix(s, cookiePrefix)
	if !found {
		return "", time.Time{}, false
	}
	epoch, node, found := strings.Cut(rest, ":")
	ns, err := strconv.ParseInt(epoch, 10, 64)
	if !found || err != nil || ns <= 0 || !vocab.IsHostName(node) {
		return "", time.Time{}, false
	}
	return node, time.Unix(0, ns).UTC(), true
}

// parseLocks decodes `rbd lock ls --format json`.
func parseLocks(out []byte) ([]lockEntry, error) {
	var locks []lockEntry
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &locks); err != nil {
		return nil, fmt.Errorf("rbd lock ls: %w", err)
	}
	return locks, nil
}

type lockEntry struct {
	ID      string `json:"id"`
	Locker  string `json:"locker"`
	Address string `json:"address"`
}

// Holder returns the image's lease, or nil when nobody holds it. A lock
// mooring did not take counts as held, by a node named after its cookie.
func (c *Cluster) Holder(ctx context.Context, image string) (*Lease, error) {
	out, err := c.rbd(ctx, "lock", "ls", "--format", "json", c.spec(image))
	if errno(err) == enoent {
		return nil, fmt.Errorf("%s: %w", image, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: list locks: %w", image, err)
	}
	locks, err := parseLocks(out)
	if err != nil || len(locks) == 0 {
		return nil, err
	}
	l := locks[0]
	node, since, ok := parseCookie(l.ID)
	if !ok {
		node = fmt.Sprintf("(foreign lock %q)", l.ID)
	}
	return &Lease{Image: image, Node: node, Since: since, Cookie: l.ID, Locker: l.Locker, Address: l.Address}, nil
}

// Acquire takes the image's lease for this node, or returns the one this
// node already holds (several containers on one node share a volume). A
// lease of another node refuses it with a *HeldError (ErrHeld).
func (c *Cluster) Acquire(ctx context.Context, image string) (*Lease, error) {
	holder, err := c.Holder(ctx, image)
	if err != nil {
		return nil, err
	}
	if holder != nil {
		if holder.Node != c.Node {
			return nil, holder.held(image)
		}
		return holder, nil
	}
	return c.lock(ctx, image)
}

// lock adds this node's lock with a new epoch; a lock another client added
// first (the lock add is atomic in the cluster) refuses it.
func (c *Cluster) lock(ctx context.Context, image string) (*Lease, error) {
	_, err := c.rbd(ctx, "lock", "add", c.spec(image), cookie(c.Node, time.Now()))
	if errno(err) == ebusy {
		holder, herr := c.Holder(ctx, image)
		if herr != nil {
			return nil, errors.Join(fmt.Errorf("image %s: %w", image, ErrHeld), herr)
		}
		switch {
		case holder == nil:
			return nil, fmt.Errorf("image %s: the lease changed hands while this node took it, try again: %w", image, ErrHeld)
		case holder.Node != c.Node:
			return nil, holder.held(image)
		}
		return holder, nil
	}
	if errno(err) == enoent {
		return nil, fmt.Errorf("%s: %w", image, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: take lease: %w", image, err)
	}
	holder, err := c.Holder(ctx, image)
	if err == nil && (holder == nil || holder.Node != c.Node) {
		err = fmt.Errorf("image %s: lease taken but not found: %w", image, ErrNotHolder)
	}
	return holder, err
}

// Release drops this node's lease. Not held is not an error; a lease of
// another node is never touched (ErrNotHolder).
func (c *Cluster) Release(ctx context.Context, image string) error {
	holder, err := c.Holder(ctx, image)
	if err != nil || holder == nil {
		return err
	}
	if holder.Node != c.Node {
		return fmt.Errorf("release %s: held by node %s: %w", image, holder.Node, ErrNotHolder)
	}
	if err := c.breakLock(ctx, holder); err != nil {
		return err
	}
	return c.forgetClients(ctx, image)
}

// breakLock removes a lock without blocklisting its locker: the locker is
// the CLI process that took the lock, long gone; fencing blocklists the
// data path's clients explicitly.
func (c *Cluster) breakLock(ctx context.Context, l *Lease) error {
	_, err := c.rbd(ctx, "lock", "rm", "--rbd-blocklist-on-break-lock=false", c.spec(l.Image), l.Cookie, l.Locker)
	if err != nil && errno(err) != enoent {
		return fmt.Errorf("image %s: remove lock of node %s: %w", l.Image, l.Node, err)
	}
	return nil
}

// Leases returns the leases this node holds in the pool.
func (c *Cluster) Leases(ctx context.Context) ([]Lease, error) {
	images, err := c.Images(ctx)
	if err != nil {
		return nil, err
	}
	var out []Lease
	for _, image := range images {
		l, err := c.Holder(ctx, image)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if l != nil && l.Node == c.Node {
			out = append(out, *l)
		}
	}
	return out, nil
}
