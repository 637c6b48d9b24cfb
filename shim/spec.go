package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/harden"
)

// maxSpecBytes bounds config.json.
const maxSpecBytes = 4 << 20

// spec is a config.json edited in place: only "mounts" and "hooks" are
// re-encoded; every other field, known to us or not, is written back byte
// for byte.
type spec struct {
	top    map[string]json.RawMessage
	mounts []json.RawMessage
	hooks  map[string]json.RawMessage
}

// parseSpec decodes config.json keeping what it does not know.
func parseSpec(b []byte) (*spec, error) {
	s := &spec{}
	if err := json.Unmarshal(b, &s.top); err != nil {
		return nil, err
	}
	if s.top == nil {
		return nil, errors.New("not a JSON object")
	}
	if raw, ok := s.top["mounts"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &s.mounts); err != nil {
			return nil, fmt.Errorf("mounts: %w", err)
		}
	}
	if raw, ok := s.top["hooks"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &s.hooks); err != nil {
			return nil, fmt.Errorf("hooks: %w", err)
		}
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// annotations returns the spec's annotations.
func (s *spec) annotations() map[string]string {
	var a map[string]string
	json.Unmarshal(s.top["annotations"], &a)
	return a
}

// env returns process.env.
func (s *spec) env() []string {
	var p struct {
		Env []string `json:"env"`
	}
	json.Unmarshal(s.top["process"], &p)
	return p.Env
}

// hasMount reports whether a mount with this source and destination is in
// the spec already (a retried create).
func (s *spec) hasMount(source, destination string) bool {
	for _, raw := range s.mounts {
		var m specs.Mount
		if json.Unmarshal(raw, &m) == nil && m.Source == source && m.Destination == destination {
			return true
		}
	}
	return false
}

// addMount appends a mount.
func (s *spec) addMount(m specs.Mount) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.mounts = append(s.mounts, raw)
	return nil
}

// addHook appends a hook to a stage unless an identical one is there.
func (s *spec) addHook(stage string, h specs.Hook) error {
	var list []json.RawMessage
	if raw, ok := s.hooks[stage]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("hooks.%s: %w", stage, err)
		}
	}
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	for _, existing := range list {
		if bytes.Equal(existing, raw) {
			return nil
		}
	}
	list = append(list, raw)
	if s.hooks == nil {
		s.hooks = map[string]json.RawMessage{}
	}
	s.hooks[stage], err = json.Marshal(list)
	return err
}

// encode writes the spec back.
func (s *spec) encode() ([]byte, error) {
	if s.mounts != nil {
		raw, err := json.Marshal(s.mounts)
		if err != nil {
			return nil, err
		}
		s.top["mounts"] = raw
	}
	if s.hooks != nil {
		raw, err := json.Marshal(s.hooks)
		if err != nil {
			return nil, err
		}
		s.top["hooks"] = raw
	}
	return json.Marshal(s.top)
}

// readSpec reads <bundle>/config.json: a regular file, not a symlink, of
// bounded size.
func readSpec(bundle string) (*spec, os.FileMode, error) {
	path := filepath.Join(bundle, "config.json")
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("bundle config %s is not a regular file", path)
	}
	b, err := harden.ReadAll(f, maxSpecBytes)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle config %s: %w", path, err)
	}
	s, err := parseSpec(b)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle config %s: %w", path, err)
	}
	return s, st.Mode().Perm(), nil
}

// writeSpec replaces <bundle>/config.json atomically: a temp file in the
// bundle, fsync, rename, fsync of the directory. Never truncates in place.
func writeSpec(bundle string, s *spec, mode os.FileMode) error {
	b, err := s.encode()
	if err != nil {
		return fmt.Errorf("encode config.json: %w", err)
	}
	tmp, err := os.CreateTemp(bundle, ".config.json.mooring-*")
	if err != nil {
		return fmt.Errorf("write config.json: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(bundle, "config.json"))
	}
	if err != nil {
		return fmt.Errorf("write config.json: %w", err)
	}
	dir, err := os.Open(bundle)
	if err != nil {
		return fmt.Errorf("sync bundle dir: %w", err)
	}
	defer dir.Close()
	return dir.Sync()
}
