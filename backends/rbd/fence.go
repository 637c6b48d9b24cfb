package rbd

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// Fence takes the image's lease from another node that is dead or cut off:
// it blocklists every client address that could still write (the image's
// watchers, the addresses the holder recorded for its data path, the
// lock's locker), breaks the holder's lock, takes the lease for this node
// and records the takeover in the image's metadata. After it, the fenced
// node's writes fail (EBLOCKLISTED, EIO through the loop device); its data
// up to its last flush is in the image and the caller must replay/fsck the
// filesystem before mounting it.
//
// Fencing an image nobody holds blocklists its watchers (clients writing
// without a lease) and takes the lease; fencing this node's own lease is
// refused.
func (c *Cluster) Fence(ctx context.Context, image string) (*Takeover, error) {
	holder, err := c.Holder(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", image, err)
	}
	if holder != nil && holder.Node == c.Node {
		return nil, fmt.Errorf("fence %s: this node (%s) holds it already", image, c.Node)
	}
	meta, err := c.metadata(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", image, err)
	}
	watchers, err := c.Watchers(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", image, err)
	}
	addrs := watchers
	if holder != nil {
		addrs = append(addrs, recordedClients(meta, holder.Node)...)
		addrs = append(addrs, holder.Address)
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if _, err := c.ceph(ctx, "osd", "blocklist", "add", a); err != nil {
			return nil, fmt.Errorf("fence %s: blocklist %s: %w", image, a, err)
		}
	}
	if holder != nil {
		if err := c.breakLock(ctx, holder); err != nil {
			return nil, fmt.Errorf("fence %s: %w", image, err)
		}
	}
	lease, err := c.lock(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("fence %s: blocklisted %v, lock broken, but: %w", image, addrs, err)
	}
	t := Takeover{By: c.Node, At: lease.Since, Blocklisted: addrs}
	if holder != nil {
		t.From, t.FromSince = holder.Node, holder.Since
		if err := c.removeMeta(ctx, image, clientsKeyPrefix+holder.Node); err != nil {
			return nil, fmt.Errorf("fence %s: %w", image, err)
		}
	}
	key := fmt.Sprintf("%s%020d", takeoverKeyPrefix, lease.Since.UnixNano())
	if err := c.setMeta(ctx, image, key, t); err != nil {
		return nil, fmt.Errorf("fence %s: lease taken, audit record not written: %w", image, err)
	}
	return &t, nil
}

// Watchers returns the addresses of the clients that have the image open.
func (c *Cluster) Watchers(ctx context.Context, image string) ([]string, error) {
	out, err := c.rbd(ctx, "status", "--format", "json", c.spec(image))
	if errno(err) == enoent {
		return nil, fmt.Errorf("%s: %w", image, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: status: %w", image, err)
	}
	return parseWatchers(out)
}

func parseWatchers(out []byte) ([]string, error) {
	var st struct {
		Watchers []struct {
			Address string `json:"address"`
		} `json:"watchers"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("rbd status: %w", err)
	}
	var addrs []string
	for _, w := range st.Watchers {
		addrs = append(addrs, w.Address)
	}
	return addrs, nil
}

// recordClients notes the data-path client addresses this node opened the
// image with (those among now that were not in before), for a later fence.
func (c *Cluster) recordClients(ctx context.Context, image string, before, now []string) error {
	var added []string
	for _, a := range now {
		if !slices.Contains(before, a) {
			added = append(added, a)
		}
	}
	return c.setMeta(ctx, image, clientsKeyPrefix+c.Node, added)
}

// forgetClients drops this node's recorded addresses after a clean detach.
func (c *Cluster) forgetClients(ctx context.Context, image string) error {
	return c.removeMeta(ctx, image, clientsKeyPrefix+c.Node)
}
