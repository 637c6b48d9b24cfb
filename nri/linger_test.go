package nri

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/volume"
	"github.com/mooring-dev/mooring/volume/volumetest"
)

// TestLingerEndsOnTheTimer: a volume released by StopContainer lingers
// and the plugin's timer unstages it when its period ends, with no
// further event, Acquire or gc (on fake devices).
func TestLingerEndsOnTheTimer(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`state_dir = %q
run_dir = %q
linger = "200ms"
[pools.default]
driver = "loop"
directory = %q
tenants = ["*"]
`, filepath.Join(dir, "state"), filepath.Join(dir, "run"), mkdir(t, dir, "pool"))))
	if err != nil {
		t.Fatal(err)
	}
	k := volumetest.NewKernel()
	m, err := volume.New(cfg, volume.WithDevices(volume.Devices{Loops: k, FS: k, Mounts: k, Blocks: k}))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlugin(m, slog.New(slog.DiscardHandler), time.Hour, "/opt/mooring/bin/mooring")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.endLingering(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	sb := pod("team-a", "db", map[string]string{annotations.KeyPod: `[{name: data, target: /data}]`})
	c := ctr(sb, "postgres")
	if _, _, err := p.CreateContainer(ctx, sb, c); err != nil {
		t.Fatal(err)
	}
	if _, err := p.StopContainer(ctx, sb, c); err != nil {
		t.Fatal(err)
	}
	// Waiting for an outcome, not timing it: the bound only keeps a
	// broken timer from hanging the test.
	// The record goes last, after the unmount and the detach.
	lingering := func() int { l, _ := m.Lingering(); return len(l) }
	for deadline := time.Now().Add(30 * time.Second); k.MountCount() > 0 || k.AttachedCount() > 0 || lingering() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			l, err := m.Lingering()
			t.Fatalf("still staged long after the period: %d mounts, %d loops, lingering records %+v, %v", k.MountCount(), k.AttachedCount(), l, err)
		}
	}
}
