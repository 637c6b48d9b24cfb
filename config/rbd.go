package config

import (
	"fmt"
	"slices"
	"time"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// Defaults of an rbd pool.
const (
	defaultRBDClient  = "admin"
	defaultRBDConf    = "/etc/ceph/ceph.conf"
	defaultRBDMap     = "auto"
	defaultRBDTimeout = 10 * time.Second
)

var rbdMaps = []string{"auto", "krbd", "nbd", "fuse"}

// rbd validates an rbd pool's cluster keys.
func (pf poolFile) rbd() (*RBD, error) {
	r := &RBD{
		CephConf:  orDefault(pf.CephConf, defaultRBDConf),
		ClientID:  orDefault(pf.CephClient, defaultRBDClient),
		RadosPool: pf.RadosPool,
		Map:       orDefault(pf.Map, defaultRBDMap),
		Timeout:   defaultRBDTimeout,
	}
	if err := absClean(r.CephConf); err != nil {
		return nil, fmt.Errorf("ceph_conf %q: %w", r.CephConf, err)
	}
	if !vocab.IsProgramName(r.ClientID) {
		return nil, fmt.Errorf("ceph_client %q: must be a Ceph client id without %q", r.ClientID, "client.")
	}
	if r.RadosPool == "" || !vocab.IsProgramName(r.RadosPool) {
		return nil, fmt.Errorf("rados_pool %q: must name the RADOS pool that holds the images", r.RadosPool)
	}
	if !slices.Contains(rbdMaps, r.Map) {
		return nil, fmt.Errorf("map %q: must be one of %v", r.Map, rbdMaps)
	}
	if pf.GrowOnRequest {
		return nil, fmt.Errorf("grow_on_request: only for driver %q", DriverLoop)
	}
	var err error
	if pf.Timeout != "" {
		if r.Timeout, err = time.ParseDuration(pf.Timeout); err != nil || r.Timeout < 2*time.Second {
			return nil, fmt.Errorf("timeout %q: must be a duration of at least 2s", pf.Timeout)
		}
	}
	if pf.TakeoverAfter != "" {
		if r.TakeoverAfter, err = time.ParseDuration(pf.TakeoverAfter); err != nil || r.TakeoverAfter < 10*time.Second {
			return nil, fmt.Errorf("takeover_after %q: must be a duration of at least 10s (leave it out to take over only by mooring volume fence)", pf.TakeoverAfter)
		}
	}
	return r, nil
}

// noRBDKeys refuses the cluster keys in a pool of another driver.
func (pf poolFile) noRBDKeys() error {
	for key, v := range map[string]string{"ceph_conf": pf.CephConf, "ceph_client": pf.CephClient, "rados_pool": pf.RadosPool, "map": pf.Map, "timeout": pf.Timeout, "takeover_after": pf.TakeoverAfter} {
		if v != "" {
			return fmt.Errorf("%s: only for driver %q", key, DriverRBD)
		}
	}
	return nil
}
