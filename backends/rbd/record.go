package rbd

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Image metadata keys mooring writes. The record is the cluster's truth
// about the volume, the same for every node; a node keeps only its own
// attachments.
const (
	recordKey = "mooring.record"
	// takeoverKeyPrefix + the 20-digit epoch of the new lease: one key per
	// takeover, so concurrent writers never overwrite each other's entry
	// (image metadata has no compare-and-swap) and keys sort by time.
	takeoverKeyPrefix = "mooring.takeover."
	// clientsKeyPrefix + node: the client addresses of that node's data
	// path, so a fence can blocklist them even after their watch expired.
	clientsKeyPrefix = "mooring.clients."
)

// Takeover is the audit entry of a fence: who took the volume, when, and
// from which node.
type Takeover struct {
	By          string    `json:"by"`
	At          time.Time `json:"at"`
	From        string    `json:"from,omitempty"`
	FromSince   time.Time `json:"from_since,omitzero"`
	Blocklisted []string  `json:"blocklisted"`
}

// GetRecord reads the volume's record (the caller's JSON); ErrNotFound when
// the image is missing or has no record (it is not a volume mooring made,
// or its creation has not finished).
func (c *Cluster) GetRecord(ctx context.Context, image string) (json.RawMessage, error) {
	meta, err := c.metadata(ctx, image)
	if err != nil {
		return nil, err
	}
	raw, ok := meta[recordKey]
	if !ok {
		return nil, fmt.Errorf("image %s has no mooring record: %w", image, ErrNotFound)
	}
	if !json.Valid([]byte(raw)) {
		return nil, fmt.Errorf("image %s: mooring record is not JSON", image)
	}
	return json.RawMessage(raw), nil
}

// SetRecord writes the volume's record, rec encoded as JSON. Only the
// lease holder (or the creator, before anyone can attach) writes it.
func (c *Cluster) SetRecord(ctx context.Context, image string, rec any) error {
	return c.setMeta(ctx, image, recordKey, rec)
}

// Takeovers returns the image's fence audit entries, oldest first.
func (c *Cluster) Takeovers(ctx context.Context, image string) ([]Takeover, error) {
	meta, err := c.metadata(ctx, image)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range meta {
		if strings.HasPrefix(k, takeoverKeyPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]Takeover, 0, len(keys))
	for _, k := range keys {
		var t Takeover
		if err := json.Unmarshal([]byte(meta[k]), &t); err != nil {
			return nil, fmt.Errorf("image %s: %s: %w", image, k, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// recordedClients returns the data-path client addresses node recorded.
func recordedClients(meta map[string]string, node string) []string {
	var addrs []string
	if raw, ok := meta[clientsKeyPrefix+node]; ok {
		json.Unmarshal([]byte(raw), &addrs) // a garbled entry only loses a hint
	}
	return addrs
}

// metadata returns all of the image's metadata.
func (c *Cluster) metadata(ctx context.Context, image string) (map[string]string, error) {
	out, err := c.rbd(ctx, "image-meta", "list", "--format", "json", c.spec(image))
	if errno(err) == enoent {
		return nil, fmt.Errorf("%s: %w", image, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: metadata: %w", image, err)
	}
	meta := map[string]string{}
	if len(strings.TrimSpace(string(out))) == 0 {
		return meta, nil // rbd prints nothing when there is none
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		return nil, fmt.Errorf("image %s: metadata: %w", image, err)
	}
	return meta, nil
}

func (c *Cluster) setMeta(ctx context.Context, image, key string, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return err
	}
	_, err = c.rbd(ctx, "image-meta", "set", c.spec(image), key, string(b))
	if errno(err) == enoent {
		return fmt.Errorf("%s: %w", image, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("image %s: set %s: %w", image, key, err)
	}
	return nil
}

func (c *Cluster) removeMeta(ctx context.Context, image, key string) error {
	_, err := c.rbd(ctx, "image-meta", "remove", c.spec(image), key)
	if err != nil && errno(err) != enoent {
		return fmt.Errorf("image %s: remove %s: %w", image, key, err)
	}
	return nil
}
