package shim

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/volume"
)

// TestSpecMounts: each staged volume becomes a bind mount at its target
// resolved in the rootfs, with the core's options.
func TestSpecMounts(t *testing.T) {
	a := volume.Staged{Volume: "t/a", Source: "/run/mooring/mnt/v1", Target: "/a"}
	b := volume.Staged{Volume: "t/b", Source: "/run/mooring/mnt/v2", Target: "/link/b", ReadOnly: true}
	for _, tc := range []struct {
		name    string
		staged  []volume.Staged
		dest    map[string]string
		want    []specs.Mount
		wantErr string
	}{
		{name: "none", want: []specs.Mount{}},
		{
			name:   "read-write and read-only, at resolved targets",
			staged: []volume.Staged{a, b},
			dest:   map[string]string{"/a": "/a", "/link/b": "/srv/b"},
			want: []specs.Mount{
				{Destination: "/a", Type: "bind", Source: "/run/mooring/mnt/v1", Options: []string{"rbind", "nosuid", "nodev"}},
				{Destination: "/srv/b", Type: "bind", Source: "/run/mooring/mnt/v2", Options: []string{"rbind", "nosuid", "nodev", "ro"}},
			},
		},
		{
			name:    "unresolved target",
			staged:  []volume.Staged{a, b},
			dest:    map[string]string{"/a": "/a"},
			wantErr: "volume t/b: target /link/b was not resolved",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := specMounts(tc.staged, tc.dest)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !reflect.DeepEqual(got, tc.want):
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
