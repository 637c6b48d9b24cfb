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
		raws, err := s.Records(ctx)
		if err != nil {
			m.log.Error("shared pool not listed", "pool", pools[i], "error", err)
			continue
		}
		for _, raw := range raws {
			var v VolumeRecord
			if err := json.Unmarshal(raw, &v); err != nil || v.check(v.Tenant, v.Name, "pool "+pools[i]) != nil || v.Pool != pools[i] {
				m.log.Error("shared record skipped", "pool", pools[i], "record", string(raw))
				continue
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key() < out[b].Key() })
	return out, nil
}
