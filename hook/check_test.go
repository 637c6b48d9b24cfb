package hook

import (
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestVerifyMounts(t *testing.T) {
	const root = "/run/c/b/rootfs"
	vol := stagedDev{Source: "/run/mooring/mnt/v1", Major: 7, Minor: 3}
	at := func(mp string, minor int) *mountinfo.Info {
		return &mountinfo.Info{Major: 7, Minor: minor, Mountpoint: mp}
	}
	// The namespace keeps the host's copy of the staging mount.
	host := at("/run/mooring/mnt/v1", 3)
	for _, tc := range []struct {
		name    string
		mounts  []*mountinfo.Info
		wantErr string
	}{
		{"at its target", []*mountinfo.Info{host, at(root+"/data", 3)}, ""},
		{"through a symlink, still inside", []*mountinfo.Info{host, at(root+"/srv/x", 3)}, ""},
		{"under dev", []*mountinfo.Info{host, at(root+"/dev/shm", 3)}, "resolves to /dev/shm"},
		{"on dev", []*mountinfo.Info{host, at(root+"/dev", 3)}, "resolves to /dev"},
		{"under sys", []*mountinfo.Info{host, at(root+"/sys/fs", 3)}, "resolves to /sys/fs"},
		{"on proc", []*mountinfo.Info{host, at(root+"/proc", 3)}, "resolves to /proc"},
		{"on the root", []*mountinfo.Info{host, at(root, 3)}, "the container's root"},
		{"twice, once bad", []*mountinfo.Info{host, at(root+"/data", 3), at(root+"/dev/x", 3)}, "resolves to /dev/x"},
		{"another device under dev", []*mountinfo.Info{host, at(root+"/data", 3), at(root+"/dev", 9)}, ""},
		{"a sibling rootfs", []*mountinfo.Info{host, at(root+"2/data", 3)}, "not mounted in the container"},
		{"not mounted", []*mountinfo.Info{host}, "not mounted in the container"},
	} {
		err := verifyMounts(root, []stagedDev{vol}, tc.mounts)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestWritable evaluates device cgroup rules as the runtime applies them:
// the last rule naming "w" that matches the device decides.
func TestWritable(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	allowRWM := specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: n(7), Minor: n(4), Access: "rwm"}
	allowR := specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: n(7), Minor: n(4), Access: "r"}
	denyW := specs.LinuxDeviceCgroup{Allow: false, Type: "b", Major: n(7), Minor: n(4), Access: "w"}
	otherW := specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: n(7), Minor: n(5), Access: "rw"}
	anyBlock := specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: n(-1), Minor: n(-1), Access: "rwm"}
	for _, tc := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  bool
	}{
		{"no rules", nil, true},
		{"deny all", []specs.LinuxDeviceCgroup{denyAll}, false},
		{"runtime's allow only (the plugin's rules dropped)", []specs.LinuxDeviceCgroup{denyAll, allowRWM}, true},
		{"plugin's rules after the runtime's", []specs.LinuxDeviceCgroup{denyAll, allowRWM, allowR, denyW}, false},
		{"read allowed", []specs.LinuxDeviceCgroup{denyAll, allowR}, false},
		{"another device", []specs.LinuxDeviceCgroup{denyAll, otherW}, false},
		{"any block device after the deny", []specs.LinuxDeviceCgroup{denyAll, allowR, denyW, anyBlock}, true},
	} {
		spec := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: tc.rules}}}
		if got := writable(spec, 7, 4); got != tc.want {
			t.Errorf("%s: writable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
