package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// ErrUnknownPool is returned for a pool the config does not define.
var ErrUnknownPool = errors.New("unknown pool")

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the embedded default config file.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }

// Default returns the embedded default policy.
func Default() *Config {
	c, err := Parse(defaultTOML)
	if err != nil {
		panic("embedded default config is invalid: " + err.Error())
	}
	return c
}

// file is the TOML layout; sizes are strings so admins write "10Gi".
type file struct {
	StateDir         string              `toml:"state_dir"`
	RunDir           string              `toml:"run_dir"`
	LogFile          string              `toml:"log_file"`
	DefaultPool      string              `toml:"default_pool"`
	DefaultTenant    string              `toml:"default_tenant"`
	AllowEnvRequests bool                `toml:"allow_env_requests"`
	EnvTenant        string              `toml:"env_tenant"`
	Runtimes         []string            `toml:"runtimes"`
	MaxVolumes       *int                `toml:"max_volumes"`
	MaxBytes         string              `toml:"max_bytes"`
	NodeName         string              `toml:"node_name"`
	Linger           string              `toml:"linger"`
	Pools            map[string]poolFile `toml:"pools"`
}

type poolFile struct {
	Driver         string   `toml:"driver"`
	Directory      string   `toml:"directory"`
	Devices        []string `toml:"devices"`
	DefaultSize    string   `toml:"default_size"`
	MaxSize        string   `toml:"max_size"`
	DefaultFS      string   `toml:"default_fs"`
	CreateOnDemand *bool    `toml:"create_on_demand"`
	GrowOnRequest  bool     `toml:"grow_on_request"`
	Tenants        []string `toml:"tenants"`
	Filesystems    []string `toml:"filesystems"`
	Capacity       string   `toml:"capacity"`
	MaxVolumes     *int     `toml:"max_volumes"`
	MaxBytes       string   `toml:"max_bytes"`
	Preallocate    bool     `toml:"preallocate"`
	Cache          string   `toml:"cache"`
	CephConf       string   `toml:"ceph_conf"`
	CephClient     string   `toml:"ceph_client"`
	RadosPool      string   `toml:"rados_pool"`
	Map            string   `toml:"map"`
	Timeout        string   `toml:"timeout"`
	TakeoverAfter  string   `toml:"takeover_after"`
	Linger         string   `toml:"linger"`
}

// quota is a per-tenant limit as written; the pool's keys override the
// top-level defaults.
type quota struct {
	volumes *int
	bytes   string
}

// Defaults for pool fields the admin leaves out.
const (
	defaultPoolSize = 1 << 30
	defaultPoolMax  = 64 << 30
	defaultFS       = "ext4"
)

// Parse decodes and validates a TOML config. Unknown keys are errors:
// a typo in a policy file must not silently widen what tenants may do.
func Parse(data []byte) (*Config, error) {
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config: unknown key %s", strings.Join(keys, ", "))
	}
	return f.validate()
}

func (f file) validate() (*Config, error) {
	c := &Config{
		StateDir:         orDefault(f.StateDir, DefaultStateDir),
		RunDir:           orDefault(f.RunDir, DefaultRunDir),
		LogFile:          orDefault(f.LogFile, DefaultLogFile),
		DefaultPool:      orDefault(f.DefaultPool, DefaultPoolName),
		DefaultTenant:    orDefault(f.DefaultTenant, DefaultTenant),
		AllowEnvRequests: f.AllowEnvRequests,
		EnvTenant:        orDefault(f.EnvTenant, DefaultEnvTenant),
		Runtimes:         f.Runtimes,
		NodeName:         f.NodeName,
		Pools:            map[string]Pool{},
	}
	if c.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("config: node_name: not set and no host name: %w", err)
		}
		c.NodeName = host
	}
	if !vocab.IsHostName(c.NodeName) {
		return nil, fmt.Errorf("config: node_name %q: must be a host name (letters, digits, '.', '-'; at most 63)", c.NodeName)
	}
	if len(c.Runtimes) == 0 {
		c.Runtimes = []string{"runc", "crun"}
	}
	for key, p := range map[string]string{"state_dir": c.StateDir, "run_dir": c.RunDir, "log_file": c.LogFile} {
		if err := absClean(p); err != nil {
			return nil, fmt.Errorf("config: %s %q: %w", key, p, err)
		}
	}
	for key, t := range map[string]string{"default_tenant": c.DefaultTenant, "env_tenant": c.EnvTenant} {
		if !vocab.IsLabel(t) {
			return nil, fmt.Errorf("config: %s %q: must be a DNS label (a-z, 0-9, -)", key, t)
		}
	}
	for _, r := range c.Runtimes {
		if absClean(r) != nil && !vocab.IsProgramName(r) {
			return nil, fmt.Errorf("config: runtimes: %q must be an absolute path or a program name", r)
		}
	}
	global := quota{volumes: f.MaxVolumes, bytes: f.MaxBytes}
	if _, err := global.resolve(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	linger, err := parseLinger(f.Linger, 0)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	names := make([]string, 0, len(f.Pools))
	for name := range f.Pools {
		names = append(names, name)
	}
	sort.Strings(names)
	listedIn := map[string]string{}
	for _, name := range names {
		p, err := f.Pools[name].validate(name, global, linger)
		if err != nil {
			return nil, fmt.Errorf("config: pools.%s: %w", name, err)
		}
		for _, d := range p.Devices {
			if other, ok := listedIn[d]; ok {
				return nil, fmt.Errorf("config: pools.%s: devices: %s is also listed in pool %q (a device belongs to one pool)", name, d, other)
			}
			listedIn[d] = name
		}
		c.Pools[name] = p
	}
	if _, ok := c.Pools[c.DefaultPool]; !ok {
		return nil, fmt.Errorf("config: default_pool %q: %w (define [pools.%s])", c.DefaultPool, ErrUnknownPool, c.DefaultPool)
	}
	return c, nil
}

func (pf poolFile) validate(name string, global quota, linger time.Duration) (Pool, error) {
	if !vocab.IsLabel(name) {
		return Pool{}, fmt.Errorf("pool name must be a DNS label (a-z, 0-9, -)")
	}
	p := Pool{
		Name:          name,
		Driver:        pf.Driver,
		Directory:     pf.Directory,
		Devices:       pf.Devices,
		DefaultFS:     orDefault(pf.DefaultFS, defaultFS),
		Tenants:       pf.Tenants,
		Filesystems:   pf.Filesystems,
		GrowOnRequest: pf.GrowOnRequest,
		Preallocate:   pf.Preallocate,
		Cache:         orDefault(pf.Cache, CacheDirect),
	}
	if p.Driver != DriverLoop && (pf.Preallocate || pf.Cache != "") {
		return Pool{}, fmt.Errorf("preallocate and cache: only for driver %q", DriverLoop)
	}
	if p.Cache != CacheDirect && p.Cache != CacheBuffered {
		return Pool{}, fmt.Errorf("cache %q: must be %q or %q", p.Cache, CacheDirect, CacheBuffered)
	}
	// Creating on demand lets every admitted tenant make volumes by naming
	// them: on by default only where the admin said who the tenants are
	// (docs/config.md).
	p.CreateOnDemand = len(pf.Tenants) > 0
	if pf.CreateOnDemand != nil {
		p.CreateOnDemand = *pf.CreateOnDemand
	}
	if len(p.Tenants) == 0 {
		p.Tenants = []string{AnyTenant}
	}
	if len(p.Filesystems) == 0 {
		p.Filesystems = slices.Clone(vocab.Filesystems)
	}
	if p.Driver != DriverRBD {
		if err := pf.noRBDKeys(); err != nil {
			return Pool{}, err
		}
	}
	switch p.Driver {
	case DriverRBD:
		if p.Directory != "" || len(p.Devices) > 0 {
			return Pool{}, fmt.Errorf("directory and devices: not for driver %q (volumes are images in rados_pool)", DriverRBD)
		}
		r, err := pf.rbd()
		if err != nil {
			return Pool{}, err
		}
		p.RBD = r
	case DriverLoop:
		if len(p.Devices) > 0 {
			return Pool{}, fmt.Errorf("devices: only for driver %q", DriverBlock)
		}
		if p.Directory != "" {
			if err := absClean(p.Directory); err != nil {
				return Pool{}, fmt.Errorf("directory %q: %w", p.Directory, err)
			}
		}
	case DriverBlock:
		if p.Directory != "" {
			return Pool{}, fmt.Errorf("directory: only for driver %q", DriverLoop)
		}
		if len(p.Devices) == 0 {
			return Pool{}, fmt.Errorf("devices: a block pool needs at least one device")
		}
		if p.GrowOnRequest {
			return Pool{}, fmt.Errorf("grow_on_request: only for driver %q (a block device has a fixed size)", DriverLoop)
		}
		for _, d := range p.Devices {
			if err := absClean(d); err != nil || !strings.HasPrefix(d, "/dev/") {
				return Pool{}, fmt.Errorf("devices: %q must be a clean path under /dev/", d)
			}
		}
	case "":
		return Pool{}, fmt.Errorf("driver: missing (%q, %q or %q)", DriverLoop, DriverBlock, DriverRBD)
	default:
		return Pool{}, fmt.Errorf("driver %q: must be %q, %q or %q", p.Driver, DriverLoop, DriverBlock, DriverRBD)
	}
	var err error
	if p.DefaultSize, err = size("default_size", pf.DefaultSize, defaultPoolSize); err != nil {
		return Pool{}, err
	}
	if p.MaxSize, err = size("max_size", pf.MaxSize, max(defaultPoolMax, p.DefaultSize)); err != nil {
		return Pool{}, err
	}
	if p.DefaultSize > p.MaxSize {
		return Pool{}, fmt.Errorf("default_size %s is larger than max_size %s", pf.DefaultSize, vocab.Size(p.MaxSize))
	}
	for _, fs := range p.Filesystems {
		if !vocab.IsFilesystem(fs) {
			return Pool{}, fmt.Errorf("filesystems: %q must be one of %s", fs, strings.Join(vocab.Filesystems, ", "))
		}
	}
	if !slices.Contains(p.Filesystems, p.DefaultFS) {
		return Pool{}, fmt.Errorf("default_fs %q: must be one of %s", p.DefaultFS, strings.Join(p.Filesystems, ", "))
	}
	if pf.Capacity != "" {
		if p.Capacity, err = size("capacity", pf.Capacity, 0); err != nil {
			return Pool{}, err
		}
	}
	q := quota{volumes: pf.MaxVolumes, bytes: pf.MaxBytes}
	if q.volumes == nil && p.Driver == DriverBlock && p.shared() {
		// A tenant of a shared block pool must not take every listed
		// device by naming volumes; only the pool's own key raises this.
		one := 1
		q.volumes = &one
	}
	lim, err := q.or(global).resolve()
	if err != nil {
		return Pool{}, err
	}
	p.MaxVolumes, p.MaxBytes = lim.volumes, lim.bytes
	if p.Driver == DriverRBD {
		// A lingering volume keeps its lease: other nodes wait for it.
		// An rbd pool lingers only when its own key says so.
		linger = 0
	}
	if p.Linger, err = parseLinger(pf.Linger, linger); err != nil {
		return Pool{}, err
	}
	for _, t := range p.Tenants {
		if t != AnyTenant && !vocab.IsLabel(t) {
			return Pool{}, fmt.Errorf("tenants: %q must be %q or a DNS label (a Kubernetes namespace)", t, AnyTenant)
		}
	}
	return p, nil
}

// parseLinger reads a linger period; empty is def.
func parseLinger(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("linger %q: must be a duration such as \"30s\" (\"0s\" turns it off)", s)
	}
	return d, nil
}

// or fills the limits q leaves unset from def.
func (q quota) or(def quota) quota {
	if q.volumes == nil {
		q.volumes = def.volumes
	}
	if q.bytes == "" {
		q.bytes = def.bytes
	}
	return q
}

// limits are a resolved quota; zero means no limit.
type limits struct {
	volumes int
	bytes   int64
}

func (q quota) resolve() (limits, error) {
	var l limits
	if q.volumes != nil {
		if *q.volumes <= 0 {
			return limits{}, fmt.Errorf("max_volumes %d: must be more than zero (leave it out for no limit)", *q.volumes)
		}
		l.volumes = *q.volumes
	}
	var err error
	if l.bytes, err = size("max_bytes", q.bytes, 0); err != nil {
		return limits{}, err
	}
	return l, nil
}

func size(key, value string, def int64) (int64, error) {
	if value == "" {
		return def, nil
	}
	s, err := vocab.ParseSize(value)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	if s <= 0 {
		return 0, fmt.Errorf("%s %q: must be more than zero", key, value)
	}
	return int64(s), nil
}

func absClean(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case !filepath.IsAbs(p):
		return errors.New("must be an absolute path")
	case filepath.Clean(p) != p:
		return errors.New("must be a clean path (no .., //, or trailing /)")
	}
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
