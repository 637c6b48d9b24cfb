package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/atomicfile"
	"github.com/mooring-dev/mooring/internal/harden"
)

// MaxConfigBytes bounds config.json.
const MaxConfigBytes = 4 << 20

// ConfigName is the bundle's spec file.
const ConfigName = "config.json"

// ReadConfig reads <bundle>/config.json: a regular file, not a symlink, of
// at most MaxConfigBytes. It returns the bytes and the file's permissions
// (a rewrite keeps them).
func ReadConfig(bundle string) ([]byte, os.FileMode, error) {
	path := filepath.Join(bundle, ConfigName)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("bundle config %s is not a regular file", path)
	}
	b, err := harden.ReadAll(f, MaxConfigBytes)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle config %s: %w", path, err)
	}
	return b, st.Mode().Perm(), nil
}

// LoadSpec reads and decodes <bundle>/config.json (see ReadConfig).
func LoadSpec(bundle string) (*specs.Spec, error) {
	b, _, err := ReadConfig(bundle)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("bundle config %s: %w", filepath.Join(bundle, ConfigName), err)
	}
	return &spec, nil
}

// WriteConfig replaces <bundle>/config.json atomically and durably; it
// never truncates in place (CVE-2024-45310 class).
func WriteConfig(bundle string, b []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(filepath.Join(bundle, ConfigName), b, perm)
}

// RootPath is the container's root filesystem as a path: root.path, made
// absolute against the bundle (the spec allows a relative one).
func RootPath(bundle string, root *specs.Root) (string, error) {
	if root == nil || root.Path == "" {
		return "", errors.New("config.json has no root.path")
	}
	if filepath.IsAbs(root.Path) {
		return filepath.Clean(root.Path), nil
	}
	return filepath.Join(bundle, root.Path), nil
}
