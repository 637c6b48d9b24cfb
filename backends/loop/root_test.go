package loop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/testenv"
)

func newPool(t *testing.T, preallocate bool, cache devices.Cache) *Pool {
	t.Helper()
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "pool")
	return &Pool{
		Name: "test", Dir: dir, MakeDir: true, Preallocate: preallocate, Cache: cache,
		Loops:          devices.NewLoops(),
		LockAllocation: func(context.Context) (func(), error) { return func() {}, nil },
	}
}

// TestPreallocate: a preallocated image takes its whole size at once; a
// sparse one takes nothing until written.
func TestPreallocate(t *testing.T) {
	for _, pre := range []bool{false, true} {
		p := newPool(t, pre, devices.CacheDirect)
		v := backends.Volume{ID: "v0000000000000001", Size: 64 << 20}
		if err := p.Create(context.Background(), &v, nil); err != nil {
			t.Fatal(err)
		}
		used, err := p.Used(context.Background(), v)
		if err != nil {
			t.Fatal(err)
		}
		if pre && used < v.Size || !pre && used != 0 {
			t.Errorf("preallocate %v: image takes %d of %d bytes", pre, used, v.Size)
		}
	}
}

// TestCache: the pool's cache setting reaches the loop device (direct
// I/O on, or off for buffered), read back from the kernel.
func TestCache(t *testing.T) {
	for cache, wantDIO := range map[devices.Cache]string{devices.CacheDirect: "1", devices.CacheBuffered: "0"} {
		p := newPool(t, false, cache)
		v := backends.Volume{ID: "v000000000000000" + wantDIO, Size: 16 << 20}
		ctx := context.Background()
		if err := p.Create(ctx, &v, nil); err != nil {
			t.Fatal(err)
		}
		a, err := p.Attach(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		dio, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(a.Device), "loop", "dio"))
		a.Hold.Close()
		if derr := p.Detach(ctx, v, a.Device, nil); derr != nil {
			t.Error(derr)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(dio)); got != wantDIO {
			t.Errorf("cache %d: dio = %s, want %s", cache, got, wantDIO)
		}
	}
}
