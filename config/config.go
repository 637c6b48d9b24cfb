package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// maxFileBytes bounds the config file; a policy is a few KiB.
const maxFileBytes = 1 << 20

// Load reads the config from path; with path "" it uses $MOORING_CONFIG,
// then DefaultPath. A missing DefaultPath yields the embedded default; a
// missing file the admin named is an error.
func Load(path string) (*Config, error) {
	explicit := true
	if path == "" {
		path = os.Getenv(EnvPath)
	}
	if path == "" {
		path, explicit = DefaultPath, false
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, maxFileBytes)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Pool returns the named pool; "" means the default pool.
func (c *Config) Pool(name string) (Pool, error) {
	if name == "" {
		name = c.DefaultPool
	}
	p, ok := c.Pools[name]
	if !ok {
		return Pool{}, fmt.Errorf("pool %q: %w (the admin config defines %s)", name, ErrUnknownPool, c.poolNames())
	}
	return p, nil
}

func (c *Config) poolNames() string {
	names := make([]string, 0, len(c.Pools))
	for n := range c.Pools {
		names = append(names, fmt.Sprintf("%q", n))
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "no pools"
	}
	return fmt.Sprint(names)
}

// PoolDirectory is where a loop pool keeps its images: its directory, or
// <state_dir>/pools/<name>.
func (c *Config) PoolDirectory(name string) string {
	if p, ok := c.Pools[name]; ok && p.Directory != "" {
		return p.Directory
	}
	return filepath.Join(c.StateDir, "pools", name)
}

// Allows reports whether tenant may use the pool.
func (p Pool) Allows(tenant string) bool {
	return slices.Contains(p.Tenants, AnyTenant) || slices.Contains(p.Tenants, tenant)
}
