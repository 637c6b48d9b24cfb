package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/mooring-dev/mooring/backends"
)

// Volume records live in this node's journal, except those of shared
// pools (rbd): their records live in the cluster beside the image, so
// every node reads the same truth and a lost node loses nothing. These
// methods route each record to its home.

// sharedRecords returns the record stores of the shared pools tenant may
// use (every shared pool for the empty tenant), by pool name.
func (m *Manager) sharedRecords(tenant string) ([]string, []backends.Records, error) {
	var names []string
	for n, p := range m.cfg.Pools {
		if p.RBD != nil && (tenant == "" || p.Allows(tenant)) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	stores := make([]backends.Records, 0, len(names))
	for _, n := range names {
		b, err := m.backend(n)
		if err != nil {
			return nil, nil, err
		}
		r, ok := b.(backends.Records)
		if !ok {
			return nil, nil, fmt.Errorf("pool %q: driver keeps no shared records", n)
		}
		stores = append(stores, r)
	}
	return names, stores, nil
}

// isShared reports whether the pool keeps its records in shared storage.
func (m *Manager) isShared(pool string) bool {
	p, ok := m.cfg.Pools[pool]
	return ok && p.RBD != nil
}

// readVolume reads a volume's record from the journal or, when the journal
// has none, from the shared pools the tenant may use.
func (m *Manager) readVolume(ctx context.Context, tenant, name string) (VolumeRecord, error) {
	rec, err := m.j.readVolume(tenant, name)
	if !errors.Is(err, ErrNotFound) {
		return rec, err
	}
	pools, stores, serr := m.sharedRecords(tenant)
	if serr != nil {
		return VolumeRecord{}, serr
	}
	for i, s := range stores {
		var v VolumeRecord
		rerr := s.ReadRecord(ctx, tenant, name, &v)
		if errors.Is(rerr, backends.ErrNotFound) {
			continue
		}
		if rerr != nil {
			// The name may be taken there: never answer "not found".
			return VolumeRecord{}, fmt.Errorf("%s/%s: pool %q: %w", tenant, name, pools[i], rerr)
		}
		if v.Pool != pools[i] {
			return VolumeRecord{}, fmt.Errorf("%s/%s: the record in pool %q names pool %q", tenant, name, pools[i], v.Pool)
		}
		return v, v.check(tenant, name, "pool "+pools[i])
	}
	return rec, err
}

// writeVolume stores the record in its home.
func (m *Manager) writeVolume(ctx context.Context, rec VolumeRecord) error {
	if !m.isShared(rec.Pool) {
		return m.j.writeVolume(rec)
	}
	b, err := m.backendOf(rec)
	if err != nil {
		return err
	}
	return b.(backends.Records).WriteRecord(ctx, rec.Tenant, rec.Name, rec)
}

// removeVolume forgets the record and the volume's last error (a volume
// made later under the name starts clean); a shared pool's record goes
// with its image (Backend.Delete).
func (m *Manager) removeVolume(_ context.Context, rec VolumeRecord) error {
	err := removeFile(m.j.lastErrorPath(rec.Tenant, rec.Name))
	if m.isShared(rec.Pool) {
		return err
	}
	return errors.Join(err, m.j.removeVolume(rec))
}

// volumes lists every record: the journal's and the shared pools'. A
// shared pool that cannot be listed is logged and left out, as a corrupt
// journal entry is.
func (m *Manager) volumes(ctx context.Context) ([]VolumeRecord, error) {
	out, err := m.j.volumes()
	if err != nil {
		return nil, err
	}
	pools, stores, err := m.sharedRecords("")
	if err != nil {
		return nil, err
	}
	for i, s := range stores {
		vs, err := sharedVolumes(ctx, s, pools[i])
		if err != nil {
			m.log.Error("shared pool not listed", "pool", pools[i], "error", err)
			continue
		}
		out = append(out, vs...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key() < out[b].Key() })
	return out, nil
}

// volumesOf lists the records of one pool: a pool's accounting reads
// only its own store, so a loop pool never waits on a cluster.
func (m *Manager) volumesOf(ctx context.Context, pool string) ([]VolumeRecord, error) {
	if !m.isShared(pool) {
		all, err := m.j.volumes()
		return slices.DeleteFunc(all, func(v VolumeRecord) bool { return v.Pool != pool }), err
	}
	b, err := m.backend(pool)
	if err != nil {
		return nil, err
	}
	return sharedVolumes(ctx, b.(backends.Records), pool)
}

// sharedVolumes decodes a shared pool's records, leaving out (and
// logging nothing for) records that are not mooring's.
func sharedVolumes(ctx context.Context, s backends.Records, pool string) ([]VolumeRecord, error) {
	raws, err := s.Records(ctx)
	if err != nil {
		return nil, err
	}
	var out []VolumeRecord
	for _, raw := range raws {
		var v VolumeRecord
		if err := json.Unmarshal(raw, &v); err != nil || v.check(v.Tenant, v.Name, "pool "+pool) != nil || v.Pool != pool {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// volumesHere lists the volumes this node may hold something of: the
// journal's, and those of shared pools that this node claims, lingers or
// has attached (a reconcile must not read every record of a cluster).
func (m *Manager) volumesHere(ctx context.Context) ([]VolumeRecord, error) {
	out, err := m.j.volumes()
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	claims, err := m.j.attachments()
	if err != nil {
		return nil, err
	}
	for _, a := range claims {
		if m.isShared(a.Pool) {
			keys[a.Volume] = true
		}
	}
	lingering, err := m.j.lingering()
	if err != nil {
		return nil, err
	}
	for _, l := range lingering {
		if m.isShared(l.Pool) {
			keys[l.Volume] = true
		}
	}
	for name, p := range m.cfg.Pools {
		if p.RBD == nil {
			continue
		}
		b, err := m.backend(name)
		if err != nil {
			return nil, err
		}
		here, err := b.(backends.Leased).AttachedHere(ctx)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", name, err)
		}
		for _, v := range here {
			keys[v.Tenant+"/"+v.Name] = true
		}
	}
	var errs []error
	for key := range keys {
		tenant, name := splitKey(key)
		v, err := m.readVolume(ctx, tenant, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key() < out[b].Key() })
	return out, errors.Join(errs...)
}
