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

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/oci"
	"github.com/mooring-dev/mooring/volume"
)

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

// readSpec reads <bundle>/config.json (bounded, never through a symlink)
// and returns it with its permissions.
func readSpec(bundle string) (*spec, os.FileMode, error) {
	b, mode, err := oci.ReadConfig(bundle)
	if err != nil {
		return nil, 0, err
	}
	s, err := parseSpec(b)
	if err != nil {
		return nil, 0, fmt.Errorf("bundle config %s: %w", filepath.Join(bundle, oci.ConfigName), err)
	}
	return s, mode, nil
}

// writeSpec replaces <bundle>/config.json atomically, keeping its mode.
func writeSpec(bundle string, s *spec, mode os.FileMode) error {
	b, err := s.encode()
	if err != nil {
		return fmt.Errorf("encode config.json: %w", err)
	}
	return oci.WriteConfig(bundle, b, mode)
}

// rootPath is the container's root filesystem on the host.
func (s *spec) rootPath(bundle string) (string, error) {
	var root *specs.Root
	if raw, ok := s.top["root"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &root); err != nil {
			return "", fmt.Errorf("root: %w", err)
		}
	}
	return oci.RootPath(bundle, root)
}

// specMounts maps staged volumes to the spec's bind mounts: each at its
// target resolved in the rootfs (dest, see resolveTargets), with the
// options the core gives it.
func specMounts(staged []volume.Staged, dest map[string]string) ([]specs.Mount, error) {
	mounts := make([]specs.Mount, 0, len(staged))
	for _, st := range staged {
		d, ok := dest[st.Target]
		if !ok {
			return nil, fmt.Errorf("volume %s: target %s was not resolved in the rootfs", st.Volume, st.Target)
		}
		mounts = append(mounts, specs.Mount{Destination: d, Type: "bind", Source: st.Source, Options: st.MountOptions()})
	}
	return mounts, nil
}

// resolveTargets applies the target rule in the container's rootfs before
// the runtime sees the spec: each target is created inside the root (as
// the runtime would) with every symlink of the image resolved in it, and
// the answer maps each requested target to its resolved in-root path, the
// destination the spec gets. The runtime then finds real directories all
// the way and follows no symlink of the image, so it mounts where the
// rule was checked. The rootfs must be in place at create (containerd,
// docker, podman and CRI-O mount it before they call the runtime): an
// empty root is refused, since resolving in the directory an image is
// mounted on later would check the wrong tree.
func resolveTargets(rootPath string, reqs []annotations.Volume) (map[string]string, error) {
	root, err := os.OpenFile(rootPath, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open container root: %w", err)
	}
	defer root.Close()
	if names, _ := root.Readdirnames(1); len(names) == 0 {
		return nil, fmt.Errorf("container root %s is empty (not mounted yet?): volume targets cannot be checked in it", rootPath)
	}
	resolved := make(map[string]string, len(reqs))
	by := make(map[string]string, len(reqs))
	for _, r := range reqs {
		t, err := oci.MkdirInRoot(root, r.Target)
		if err != nil {
			return nil, fmt.Errorf("volume %s: target %s: %w", r.Name, r.Target, err)
		}
		t.File.Close()
		if other, dup := by[t.InRoot]; dup {
			return nil, fmt.Errorf("volume %s: target %s resolves to %s, like volume %s's", r.Name, r.Target, t.InRoot, other)
		}
		by[t.InRoot] = r.Name
		resolved[r.Target] = t.InRoot
	}
	return resolved, nil
}
