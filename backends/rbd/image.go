package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// imageFeatures are the only features mooring's images get. Layering keeps
// clones and snapshots possible and every client (kernel rbd included)
// supports it. exclusive-lock is left out on purpose: it is cooperative
// (a second librbd writer takes the lock over at once, so it fences
// nothing), and with it the advisory lock that is mooring's lease makes
// librbd writers retry forever in D state. object-map, fast-diff and
// journaling need exclusive-lock, so they are out too.
const imageFeatures = "layering"

// Create makes the image of a tenant's volume, size bytes, without a
// record: the caller writes it (SetRecord) once it has chosen what it
// holds; until then the image is not a volume to anyone (GetRecord says
// ErrNotFound, a second Create ErrExists). ErrExists when the image is
// already there.
func (c *Cluster) Create(ctx context.Context, tenant, volume string, size int64) (string, error) {
	image, err := ImageName(tenant, volume)
	if err != nil {
		return "", err
	}
	if size <= 0 {
		return "", fmt.Errorf("create %s: size %d: must be positive", image, size)
	}
	_, err = c.rbd(ctx, "create", "--size", strconv.FormatInt(size, 10)+"B", "--image-feature", imageFeatures, c.spec(image))
	if errno(err) == eexist {
		return "", fmt.Errorf("create %s: %w", image, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", image, err)
	}
	return image, nil
}

// Delete removes the image. A lease held by another node refuses it
// (ErrHeld); this node's own lease is released first. A missing image is
// not an error.
func (c *Cluster) Delete(ctx context.Context, image string) error {
	holder, err := c.Holder(ctx, image)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", image, err)
	}
	if holder != nil {
		if holder.Node != c.Node {
			return fmt.Errorf("delete %s: %w", image, holder.held(image))
		}
		if err := c.Release(ctx, image); err != nil {
			return fmt.Errorf("delete %s: %w", image, err)
		}
	}
	return c.remove(ctx, image)
}

func (c *Cluster) remove(ctx context.Context, image string) error {
	_, err := c.rbd(ctx, "rm", "--no-progress", c.spec(image))
	if err != nil && errno(err) != enoent {
		return fmt.Errorf("remove image %s: %w", image, err)
	}
	return nil
}

// Exists reports whether the image exists.
func (c *Cluster) Exists(ctx context.Context, image string) (bool, error) {
	_, err := c.Size(ctx, image)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Size returns the image's size in bytes.
func (c *Cluster) Size(ctx context.Context, image string) (int64, error) {
	out, err := c.rbd(ctx, "info", "--format", "json", c.spec(image))
	if errno(err) == enoent {
		return 0, fmt.Errorf("%s: %w", image, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("image %s: %w", image, err)
	}
	var info struct {
		Size *int64 `json:"size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Size == nil {
		return 0, fmt.Errorf("image %s: rbd info: unexpected output %.80q", image, out)
	}
	return *info.Size, nil
}

// Images lists the images mooring named in the pool.
func (c *Cluster) Images(ctx context.Context) ([]string, error) {
	out, err := c.rbd(ctx, "ls", "--format", "json", c.Pool)
	if err != nil {
		return nil, fmt.Errorf("list images of pool %s: %w", c.Pool, err)
	}
	var all []string
	if err := json.Unmarshal(out, &all); err != nil {
		return nil, fmt.Errorf("list images of pool %s: %w", c.Pool, err)
	}
	var ours []string
	for _, name := range all {
		if _, _, ok := ParseImageName(name); ok {
			ours = append(ours, name)
		}
	}
	return ours, nil
}
