package volume

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLockExcludesAcrossRemoval: holders that remove the lock file on
// unlock (as volume locks of absent volumes do) never let two holders in
// at once, even when a waiter locked the file that was just removed.
func TestLockExcludesAcrossRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks", "x.lock")
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				l, err := lockFile(context.Background(), path)
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				for range 3 {
					runtime.Gosched() // let the others run while we hold it
				}
				if inside.Load() != 1 {
					overlaps.Add(1)
				}
				inside.Add(-1)
				l.keep = func() bool { return false }
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d times two goroutines held the lock at once", n)
	}
}
