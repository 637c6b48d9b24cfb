package volume

import (
	"slices"
	"testing"

	"github.com/mooring-dev/mooring/config"
)

func TestStagedMountOptions(t *testing.T) {
	for _, tc := range []struct {
		ro   bool
		want []string
	}{
		{false, []string{"rbind", "nosuid", "nodev"}},
		{true, []string{"rbind", "nosuid", "nodev", "ro"}},
	} {
		if got := (Staged{ReadOnly: tc.ro}).MountOptions(); !slices.Equal(got, tc.want) {
			t.Errorf("read-only %v: got %v, want %v", tc.ro, got, tc.want)
		}
	}
}

// TestIsStaging: only a volume's own staging directory is one; the hook
// leaves mounts of such paths to the runtime.
func TestIsStaging(t *testing.T) {
	m, err := New(&config.Config{RunDir: "/run/mooring"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/run/mooring/mnt/v1":      true,
		"/run/mooring/mnt/abc-123": true,
		"/run/mooring/mnt":         false,
		"/run/mooring/mnt/":        false,
		"/run/mooring/mnt/v1/sub":  false,
		"/run/mooring/mnt/../x":    false,
		"/run/mooring/mnt//v1":     false,
		"/run/mooring/mntx/v1":     false,
		"/elsewhere/mnt/v1":        false,
		"":                         false,
	} {
		if got := m.IsStaging(path); got != want {
			t.Errorf("IsStaging(%q) = %v, want %v", path, got, want)
		}
	}
	fm, _ := newTestManager(t)
	st := mustAcquire(t, fm, owner("c1"), req("pgdata", "/data"))
	if !fm.IsStaging(st[0].Source) {
		t.Errorf("IsStaging(%q) = false for the staged source", st[0].Source)
	}
}
