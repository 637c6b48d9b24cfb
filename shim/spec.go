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
		if st.Block != nil {
			continue // specDevices
		}
		d, err := destination(st, dest)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, specs.Mount{Destination: d, Type: "bind", Source: st.Source, Options: st.MountOptions()})
	}
	return mounts, nil
}

func destination(st volume.Staged, dest map[string]string) (string, error) {
	d, ok := dest[st.Target]
	if !ok {
		return "", fmt.Errorf("volume %s: target %s was not resolved in the rootfs", st.Volume, st.Target)
	}
	return d, nil
}

// blockNode is what the spec gets for a raw block volume: the node the
// runtime creates at the resolved target (mooring never writes into the
// root) and the device cgroup rule that lets the container use exactly
// that device, without write when read-only. Both carry the numbers of
// the volume's own device, from the core.
type blockNode struct {
	device specs.LinuxDevice
	rule   specs.LinuxDeviceCgroup
}

// specDevices maps the staged raw block volumes to their nodes and rules.
func specDevices(staged []volume.Staged, dest map[string]string) ([]blockNode, error) {
	var nodes []blockNode
	for _, st := range staged {
		if st.Block == nil {
			continue
		}
		d, err := destination(st, dest)
		if err != nil {
			return nil, err
		}
		major, minor := int64(st.Block.Major), int64(st.Block.Minor)
		mode, access := os.FileMode(0o660), "rw"
		if st.ReadOnly {
			mode, access = 0o440, "r"
		}
		var root uint32
		nodes = append(nodes, blockNode{
			device: specs.LinuxDevice{Path: d, Type: "b", Major: major, Minor: minor, FileMode: &mode, UID: &root, GID: &root},
			rule:   specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: &major, Minor: &minor, Access: access},
		})
	}
	return nodes, nil
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
		inRoot, err := resolveTarget(root, r)
		if err != nil {
			return nil, fmt.Errorf("volume %s: target %s: %w", r.Name, r.Target, err)
		}
		if other, dup := by[inRoot]; dup {
			return nil, fmt.Errorf("volume %s: target %s resolves to %s, like volume %s's", r.Name, r.Target, inRoot, other)
		}
		by[inRoot] = r.Name
		resolved[r.Target] = inRoot
	}
	return resolved, nil
}

// resolveTarget is one volume's destination in the root: a directory to
// mount on, or for a raw block volume a free path for the runtime's node.
func resolveTarget(root *os.File, r annotations.Volume) (string, error) {
	if r.IsBlock() {
		return oci.FreeInRoot(root, r.Target)
	}
	t, err := oci.MkdirInRoot(root, r.Target)
	if err != nil {
		return "", err
	}
	t.File.Close()
	return t.InRoot, nil
}

// addBlockNode adds a raw block volume's node to linux.devices and its
// rule at the end of linux.resources.devices (after the spec's own
// deny-all), keeping every other field of linux as it is. A retried
// create finds the node there and adds nothing; a node of another device
// at the same path is refused.
func (s *spec) addBlockNode(n blockNode) error {
	linux, err := object(s.top, "linux")
	if err != nil {
		return err
	}
	devs, err := list(linux, "devices")
	if err != nil {
		return fmt.Errorf("linux: %w", err)
	}
	for _, raw := range devs {
		var d specs.LinuxDevice
		if json.Unmarshal(raw, &d) != nil || d.Path != n.device.Path {
			continue
		}
		if d.Type == n.device.Type && d.Major == n.device.Major && d.Minor == n.device.Minor {
			return nil
		}
		return fmt.Errorf("linux.devices has another device at %s", d.Path)
	}
	resources, err := object(linux, "resources")
	if err != nil {
		return fmt.Errorf("linux: %w", err)
	}
	rules, err := list(resources, "devices")
	if err != nil {
		return fmt.Errorf("linux.resources: %w", err)
	}
	if devs, err = appendJSON(devs, n.device); err != nil {
		return err
	}
	if rules, err = appendJSON(rules, n.rule); err != nil {
		return err
	}
	if err := setJSON(resources, "devices", rules); err != nil {
		return err
	}
	if err := setJSON(linux, "devices", devs); err != nil {
		return err
	}
	if err := setJSON(linux, "resources", resources); err != nil {
		return err
	}
	return setJSON(s.top, "linux", linux)
}

// object decodes the JSON object at m[key]; missing or null is empty.
func object(m map[string]json.RawMessage, key string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if raw, ok := m[key]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return out, nil
}

// list decodes the JSON array at m[key]; missing or null is empty.
func list(m map[string]json.RawMessage, key string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	if raw, ok := m[key]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return out, nil
}

func appendJSON(l []json.RawMessage, v any) ([]json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(l, raw), nil
}

func setJSON(m map[string]json.RawMessage, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	m[key] = raw
	return nil
}
