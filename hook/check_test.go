package hook

import (
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
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
