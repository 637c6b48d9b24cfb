package shim

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/volume"
)

// TestSpecDevices: a raw block volume becomes a node of exactly its
// device at the resolved target and an allow rule for that device, "r"
// only when read-only; filesystem volumes get none.
func TestSpecDevices(t *testing.T) {
	fsVol := volume.Staged{Volume: "t/fs", Source: "/run/mooring/mnt/v1", Target: "/fs"}
	rw := volume.Staged{Volume: "t/rw", Target: "/disk", Block: &volume.BlockDevice{Path: "/dev/loop3", Major: 7, Minor: 3}}
	ro := volume.Staged{Volume: "t/ro", Target: "/link/ro", ReadOnly: true, Block: &volume.BlockDevice{Path: "/dev/loop4", Major: 7, Minor: 4}}
	dest := map[string]string{"/fs": "/fs", "/disk": "/disk", "/link/ro": "/srv/ro"}
	nodes, err := specDevices([]volume.Staged{fsVol, rw, ro}, dest)
	if err != nil {
		t.Fatal(err)
	}
	rwMode, roMode, root := os.FileMode(0o660), os.FileMode(0o440), uint32(0)
	want := []blockNode{
		{specs.LinuxDevice{Path: "/disk", Type: "b", Major: 7, Minor: 3, FileMode: &rwMode, UID: &root, GID: &root},
			specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(7), Minor: i64(3), Access: "rw"}},
		{specs.LinuxDevice{Path: "/srv/ro", Type: "b", Major: 7, Minor: 4, FileMode: &roMode, UID: &root, GID: &root},
			specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(7), Minor: i64(4), Access: "r"}},
	}
	if !reflect.DeepEqual(nodes, want) {
		t.Fatalf("got %+v\nwant %+v", nodes, want)
	}
	mounts, err := specMounts([]volume.Staged{fsVol, rw, ro}, dest)
	if err != nil || len(mounts) != 1 || mounts[0].Destination != "/fs" {
		t.Fatalf("mounts = %+v, %v; want only the filesystem volume", mounts, err)
	}
	if _, err := specDevices([]volume.Staged{rw}, map[string]string{}); err == nil || !strings.Contains(err.Error(), "was not resolved") {
		t.Fatalf("unresolved target: %v", err)
	}
}

func i64(v int64) *int64 { return &v }

// TestAddBlockNode edits linux.devices and linux.resources.devices and
// keeps every other field of linux; a retry adds nothing.
func TestAddBlockNode(t *testing.T) {
	const in = `{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"mount"}],"future":{"x":1},
"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}],
"resources":{"memory":{"limit":1048576},"devices":[{"allow":false,"access":"rwm"}]}}}`
	s, err := parseSpec([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ := specDevices([]volume.Staged{{Volume: "t/rw", Target: "/disk", Block: &volume.BlockDevice{Major: 7, Minor: 3}}}, map[string]string{"/disk": "/disk"})
	for range 2 {
		if err := s.addBlockNode(nodes[0]); err != nil {
			t.Fatal(err)
		}
	}
	out, err := s.encode()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Linux struct {
			Namespaces json.RawMessage            `json:"namespaces"`
			Future     json.RawMessage            `json:"future"`
			Devices    []specs.LinuxDevice        `json:"devices"`
			Resources  map[string]json.RawMessage `json:"resources"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var rules []specs.LinuxDeviceCgroup
	json.Unmarshal(got.Linux.Resources["devices"], &rules)
	switch {
	case string(got.Linux.Namespaces) != `[{"type":"mount"}]` || string(got.Linux.Future) != `{"x":1}` || string(got.Linux.Resources["memory"]) != `{"limit":1048576}`:
		t.Errorf("other fields changed: %s", out)
	case len(got.Linux.Devices) != 2 || got.Linux.Devices[1].Path != "/disk" || got.Linux.Devices[1].Major != 7:
		t.Errorf("devices: %+v", got.Linux.Devices)
	case len(rules) != 2 || rules[0].Allow || !rules[1].Allow || *rules[1].Major != 7 || *rules[1].Minor != 3 || rules[1].Access != "rw":
		t.Errorf("rules (the allow must follow the deny-all): %+v", rules)
	}
	other := nodes[0]
	other.device.Minor = 9
	if err := s.addBlockNode(other); err == nil || !strings.Contains(err.Error(), "another device at /disk") {
		t.Fatalf("another device at the same path: %v", err)
	}
	// A spec without linux at all gets one.
	bare, _ := parseSpec([]byte(`{"ociVersion":"1.2.0"}`))
	if err := bare.addBlockNode(nodes[0]); err != nil {
		t.Fatal(err)
	}
	if out, _ := bare.encode(); !strings.Contains(string(out), `"resources":{"devices":[{"allow":true,"type":"b","major":7,"minor":3,"access":"rw"}]}`) {
		t.Fatalf("bare spec: %s", out)
	}
}
