package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/devices"
)

// Pool is the driver of an rbd pool on this node: volumes are images,
// their records are image metadata, and Attach takes the image's lease
// before the device appears.
type Pool struct {
	Name    string
	Cluster *Cluster
	Data    *DataPath
	// TakeoverAfter, when set, fences a holder that has had no watcher on
	// the image for this long instead of refusing (see Attach).
	TakeoverAfter time.Duration
	Log           *slog.Logger
}

var (
	_ backends.Backend = (*Pool)(nil)
	_ backends.Records = (*Pool)(nil)
	_ backends.Leased  = (*Pool)(nil)
	_ backends.Checker = (*Pool)(nil)
)

// unwatchedKey marks when a node first found a holder without watchers;
// an automatic takeover waits TakeoverAfter from that mark.
const unwatchedKey = "mooring.unwatched"

// unwatched is the mark: the lease it saw and when.
type unwatched struct {
	Cookie string    `json:"cookie"`
	Since  time.Time `json:"since"`
}

func image(v backends.Volume) (string, error) { return ImageName(v.Tenant, v.Name) }

// Create makes the image; the caller writes its record.
func (p *Pool) Create(ctx context.Context, v *backends.Volume, _ []string) error {
	img, err := p.Cluster.Create(ctx, v.Tenant, v.Name, v.Size)
	if errors.Is(err, ErrExists) {
		img, _ = image(*v)
		return fmt.Errorf("%w: image %s exists in RADOS pool %s without a mooring record: another node is creating it, or a creation crashed (check it, then rbd rm it)", backends.ErrInUse, img, p.Cluster.Pool)
	}
	if err != nil {
		return err
	}
	v.Backing = img
	return nil
}

// Delete removes the image, refused while another node holds it.
func (p *Pool) Delete(ctx context.Context, v backends.Volume) error {
	img, err := image(v)
	if err != nil {
		return err
	}
	if err := p.Cluster.Delete(ctx, img); err != nil {
		return inUse(err)
	}
	return nil
}

// Attach takes the lease (or reuses this node's) and attaches the image
// through the node's data path. A lease another node holds refuses it,
// naming the holder, unless the pool takes over unwatched holders and this
// one has been unwatched for TakeoverAfter.
func (p *Pool) Attach(ctx context.Context, v backends.Volume) (_ backends.Attached, err error) {
	img, err := image(v)
	if err != nil {
		return backends.Attached{}, err
	}
	if _, err := p.Cluster.Acquire(ctx, img); err != nil {
		var held *HeldError
		if !errors.As(err, &held) || p.TakeoverAfter == 0 {
			return backends.Attached{}, inUse(err)
		}
		if err := p.takeOverUnwatched(ctx, img, held); err != nil {
			return backends.Attached{}, err
		}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Cluster.Release(context.WithoutCancel(ctx), img))
		}
	}()
	a, hold, err := p.Data.Attach(ctx, img, devices.TagPrefix+v.ID)
	if err != nil {
		return backends.Attached{}, err
	}
	state, err := json.Marshal(a)
	if err != nil {
		return backends.Attached{}, errors.Join(err, hold.Close(), p.Data.Detach(ctx, a))
	}
	return backends.Attached{Device: a.Device, Hold: hold, State: state}, nil
}

// takeOverUnwatched fences a holder nobody watches the image for: the
// first node to see it so marks the time, and a request TakeoverAfter
// later that still sees no watcher fences it. A watcher clears the mark.
func (p *Pool) takeOverUnwatched(ctx context.Context, img string, held *HeldError) error {
	watchers, err := p.Cluster.Watchers(ctx, img)
	if err != nil {
		return err
	}
	lease, err := p.Cluster.Holder(ctx, img)
	if err != nil || lease == nil {
		return errors.Join(inUse(held), err)
	}
	meta, err := p.Cluster.metadata(ctx, img)
	if err != nil {
		return err
	}
	var mark unwatched
	_ = json.Unmarshal([]byte(meta[unwatchedKey]), &mark) // no mark, or a garbled one: start over
	switch {
	case len(watchers) > 0:
		return errors.Join(inUse(held), p.Cluster.removeMeta(ctx, img, unwatchedKey))
	case mark.Cookie != lease.Cookie:
		mark = unwatched{Cookie: lease.Cookie, Since: time.Now().UTC()}
		if err := p.Cluster.setMeta(ctx, img, unwatchedKey, mark); err != nil {
			return err
		}
	}
	if wait := time.Until(mark.Since.Add(p.TakeoverAfter)); wait > 0 {
		return fmt.Errorf("%w: %w; it has no watcher since %s: taken over automatically in %s", backends.ErrInUse, held, mark.Since.Format(time.RFC3339), wait.Round(time.Second))
	}
	t, err := p.Cluster.Fence(ctx, img)
	if err != nil {
		return err
	}
	p.Log.Warn("volume taken over automatically", "image", img, "from", t.From, "from_since", t.FromSince, "blocklisted", t.Blocklisted, "unwatched_since", mark.Since)
	return p.Cluster.removeMeta(ctx, img, unwatchedKey)
}

// Detach detaches the image on this node, then gives up the lease. It
// never touches another node's lease: a node that was fenced tears down
// what it holds here and leaves the cluster to the new holder. A lease
// that cannot be given up (the cluster is unreachable) stays this node's
// until a later Detach, Delete or a fence by another node.
func (p *Pool) Detach(ctx context.Context, v backends.Volume, _ string, state json.RawMessage) error {
	img, atts, err := p.attachments(ctx, v, state)
	if err != nil {
		return err
	}
	for i := range atts {
		if err := p.Data.Detach(ctx, &atts[i]); err != nil {
			return err
		}
	}
	err = p.Cluster.Release(ctx, img)
	switch {
	case errors.Is(err, ErrNotHolder):
		p.Log.Warn("volume was taken over by another node; detached here without touching it", "image", img, "error", err)
	case err != nil:
		p.Log.Warn("lease not given up; it stays this node's", "image", img, "error", err)
	}
	return nil
}

// attachments returns v's image and its attachment on this node: the
// state recorded, or what the data path has attached for the image.
func (p *Pool) attachments(ctx context.Context, v backends.Volume, state json.RawMessage) (string, []Attachment, error) {
	img, err := image(v)
	if err != nil {
		return "", nil, err
	}
	if len(state) > 0 {
		var a Attachment
		if err := json.Unmarshal(state, &a); err != nil {
			return "", nil, fmt.Errorf("image %s: recorded attachment: %w", img, err)
		}
		return img, []Attachment{a}, nil
	}
	all, err := p.Data.Leftovers(ctx)
	if err != nil {
		return "", nil, err
	}
	var out []Attachment
	for _, a := range all {
		if a.Image == img {
			out = append(out, a)
		}
	}
	return img, out, nil
}

// Attached lists the devices this node has attached for the image.
func (p *Pool) Attached(ctx context.Context, v backends.Volume) ([]string, error) {
	_, atts, err := p.attachments(ctx, v, nil)
	if err != nil {
		return nil, err
	}
	devs := make([]string, 0, len(atts))
	for _, a := range atts {
		devs = append(devs, a.Device)
	}
	return devs, nil
}

// Lost says this node lost the volume: its helper died, or another node
// holds the lease (this one was fenced).
func (p *Pool) Lost(ctx context.Context, v backends.Volume, state json.RawMessage) error {
	img, atts, err := p.attachments(ctx, v, state)
	if err != nil {
		return err
	}
	for i := range atts {
		if err := p.Data.Check(&atts[i]); err != nil {
			return err
		}
	}
	holder, err := p.Cluster.Holder(ctx, img)
	if err != nil {
		return nil // cut off from the cluster is not lost: the lease is still ours
	}
	if holder == nil || holder.Node != p.Cluster.Node {
		who := "nobody"
		if holder != nil {
			who = "node " + holder.Node
		}
		return fmt.Errorf("image %s: %w: now held by %s", img, ErrNotHolder, who)
	}
	return nil
}

// Fence takes the volume over for this node.
func (p *Pool) Fence(ctx context.Context, v backends.Volume) (string, error) {
	img, err := image(v)
	if err != nil {
		return "", err
	}
	t, err := p.Cluster.Fence(ctx, img)
	if err != nil {
		return "", err
	}
	return describe(img, *t), nil
}

// CheckStage has nothing to check: the cluster's own quotas and fullness
// guard its space.
func (p *Pool) CheckStage(context.Context, backends.Volume) error { return nil }

// Capacity is the RADOS pool's byte quota (ceph osd pool set-quota), or
// no limit when it has none: RBD images are thin, and how much a cluster
// can still store is the cluster's to say (ceph df needs a mgr; the
// admin sets the pool's capacity in mooring's config or a quota).
func (p *Pool) Capacity(ctx context.Context) (int64, error) {
	out, err := p.Cluster.ceph(ctx, "osd", "dump", "--format", "json")
	if err != nil {
		return 0, fmt.Errorf("RADOS pool %s quota: %w", p.Cluster.Pool, err)
	}
	return parseQuota(out, p.Cluster.Pool)
}

// parseQuota reads a pool's quota from the OSD map (ceph osd dump): the
// monitors answer it without a mgr.
func parseQuota(out []byte, pool string) (int64, error) {
	var dump struct {
		Pools []struct {
			Name     string `json:"pool_name"`
			MaxBytes int64  `json:"quota_max_bytes"`
		} `json:"pools"`
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		return 0, fmt.Errorf("ceph osd dump: %w", err)
	}
	for _, p := range dump.Pools {
		if p.Name == pool {
			if p.MaxBytes <= 0 {
				return math.MaxInt64, nil
			}
			return p.MaxBytes, nil
		}
	}
	return 0, fmt.Errorf("ceph osd dump: no RADOS pool %q", pool)
}

// Used is the image's provisioned size: thin usage needs the fast-diff
// feature, which needs exclusive-lock (left out, see the package doc).
func (p *Pool) Used(_ context.Context, v backends.Volume) (int64, error) { return v.Size, nil }

// FormatsOnlyZeroed is false: mooring made the image, and a new image
// reads as zeros.
func (p *Pool) FormatsOnlyZeroed() bool { return false }

// ReadRecord implements backends.Records.
func (p *Pool) ReadRecord(ctx context.Context, tenant, name string, v any) error {
	img, err := ImageName(tenant, name)
	if err != nil {
		return err
	}
	raw, err := p.Cluster.GetRecord(ctx, img)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s/%s: %w", tenant, name, backends.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// WriteRecord implements backends.Records.
func (p *Pool) WriteRecord(ctx context.Context, tenant, name string, v any) error {
	img, err := ImageName(tenant, name)
	if err != nil {
		return err
	}
	return p.Cluster.SetRecord(ctx, img, v)
}

// Records implements backends.Records: images without a record (being
// created) are left out.
func (p *Pool) Records(ctx context.Context) ([]json.RawMessage, error) {
	images, err := p.Cluster.Images(ctx)
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for _, img := range images {
		raw, err := p.Cluster.GetRecord(ctx, img)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}

// inUse marks a lease another node holds as the core's ErrInUse.
func inUse(err error) error {
	if errors.Is(err, ErrHeld) {
		return fmt.Errorf("%w: %w", backends.ErrInUse, err)
	}
	return err
}

// Check reports the data path this node uses and whether the cluster
// answers and holds the RADOS pool.
func (p *Pool) Check(ctx context.Context) (string, error) {
	if _, err := p.Capacity(ctx); err != nil {
		return "", err
	}
	path := string(p.Data.Map)
	if p.Data.FUSETool != "" {
		path += " (" + p.Data.FUSETool + ")"
	}
	return fmt.Sprintf("cluster answers as client.%s, RADOS pool %s, node %s, data path %s", p.Cluster.ClientID, p.Cluster.Pool, p.Cluster.Node, path), nil
}

// AttachedHere lists the volumes whose images this node's data path has
// attached.
func (p *Pool) AttachedHere(ctx context.Context) ([]backends.Volume, error) {
	all, err := p.Data.Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	var out []backends.Volume
	for _, a := range all {
		if tenant, name, ok := ParseImageName(a.Image); ok {
			out = append(out, backends.Volume{Tenant: tenant, Name: name, Pool: p.Name, Backing: a.Image})
		}
	}
	return out, nil
}

// Lease reads the image's lease and takeover records.
func (p *Pool) Lease(ctx context.Context, v backends.Volume) (backends.LeaseStatus, error) {
	img, err := image(v)
	if err != nil {
		return backends.LeaseStatus{}, err
	}
	var st backends.LeaseStatus
	holder, err := p.Cluster.Holder(ctx, img)
	if err != nil {
		return st, err
	}
	if holder != nil {
		st.Holder, st.Since = holder.Node, holder.Since
	}
	takeovers, err := p.Cluster.Takeovers(ctx, img)
	if err != nil {
		return st, err
	}
	for _, t := range takeovers {
		st.Takeovers = append(st.Takeovers, describe(img, t))
	}
	return st, nil
}

// describe is the one line a takeover is reported as.
func describe(img string, t Takeover) string {
	from := "nobody"
	if t.From != "" {
		from = fmt.Sprintf("node %s (holder since %s)", t.From, t.FromSince.Format(time.RFC3339))
	}
	return fmt.Sprintf("%s taken over by node %s at %s from %s; blocklisted %v", img, t.By, t.At.Format(time.RFC3339), from, t.Blocklisted)
}
