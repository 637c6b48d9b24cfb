package volume

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// assertNoFiles fails when anything but directories exists under dir: a
// refused request must leave no lock file, record or image behind.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRefusedRequestsLeaveNothing asks for 50 volumes the policy refuses
// (a pool the tenant may not use, a pool that does not create on demand,
// an unknown pool): no lock file, record or directory may appear.
func TestRefusedRequestsLeaveNothing(t *testing.T) {
	m, _ := newTestManager(t)
	ctx := context.Background()
	pools := []string{"team-a", "fixed", "nope"}
	for i := range 50 {
		r := req(fmt.Sprintf("refused%d", i), "/d")
		r.Pool = pools[i%len(pools)]
		if _, err := m.Acquire(ctx, owner("c"), []Request{r}); err == nil {
			t.Fatalf("request %d in pool %s was not refused", i, r.Pool)
		}
		if r.Pool == "fixed" {
			continue // mooring volume create may create there
		}
		if _, err := m.Create(ctx, "default", r); err == nil {
			t.Fatalf("create %d in pool %s was not refused", i, r.Pool)
		}
	}
	assertNoFiles(t, m.cfg.RunDir)
	assertNoFiles(t, m.cfg.StateDir)
}
