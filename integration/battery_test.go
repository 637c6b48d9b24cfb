package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// TestConcurrentContainers starts 32 containers at once, each with a new
// volume, plus 8 sharing one volume (runc + hooks): all succeed, all data
// is there, and everything is released.
func TestConcurrentContainers(t *testing.T) {
	e := newHookEnv(t)
	const own, sharing = 32, 8
	var wg sync.WaitGroup
	errs := make(chan error, own+sharing)
	start := func(id, req, script string) {
		defer wg.Done()
		b := e.bundle(req, script)
		if _, stderr, err := e.runc.Run(b, id); err != nil {
			errs <- fmt.Errorf("%s: %v: %s", id, err, stderr)
		}
	}
	for i := 0; i < own; i++ {
		wg.Add(1)
		go start(fmt.Sprintf("own-%d", i), fmt.Sprintf(`[{name: own-%d, target: /data}]`, i), fmt.Sprintf("echo %d > /data/id", i))
	}
	for i := 0; i < sharing; i++ {
		wg.Add(1)
		go start(fmt.Sprintf("share-%d", i), `[{name: shared, target: /shared}]`, fmt.Sprintf("echo %d > /shared/from-%d", i, i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.Fatalf("log:\n%s", e.scratch.Log())
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after all containers exited", n)
	}
	out := e.run(e.bundle(`[{name: shared, target: /shared}]`, "ls /shared | grep -c from-"), "count")
	if strings.TrimSpace(out) != fmt.Sprint(sharing) {
		t.Fatalf("shared volume has %q files, want %d", out, sharing)
	}
	if out := e.run(e.bundle(`[{name: own-17, target: /data}]`, "cat /data/id"), "check"); strings.TrimSpace(out) != "17" {
		t.Fatalf("own-17 holds %q", out)
	}
}

// TestSymlinkSwapRace exchanges (RENAME_EXCHANGE) a directory and a
// symlink to a host directory on the target path, as fast as it can, while
// containers with a volume on that path start: no mount ever lands outside
// the rootfs.
func TestSymlinkSwapRace(t *testing.T) {
	const starts = 1000
	e := newHookEnv(t)
	outside, err := os.MkdirTemp("/var/tmp", "mooring-swap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	b := e.bundle(`[{name: race, target: /data}]`, "true")
	// Only one rootfs: the container's image is the attacker's playground.
	dir, link := filepath.Join(b.Rootfs, "data"), filepath.Join(b.Rootfs, "data-link")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	before := lab.MountsOutside(os.TempDir())
	var stop atomic.Bool
	var swaps atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE) == nil {
				swaps.Add(1)
			}
		}
	}()
	failed := 0
	for i := 0; i < starts; i++ {
		if _, _, err := e.runc.Run(b, fmt.Sprintf("race-%d", i)); err != nil {
			failed++ // refused when the target was a symlink at resolution time
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			stop.Store(true)
			t.Fatalf("start %d wrote to the host directory %s", i, outside)
		}
	}
	stop.Store(true)
	<-done
	if after := lab.MountsOutside(os.TempDir()); !slices.Equal(before, after) {
		t.Fatalf("host mount table changed:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("%d starts, %d refused, %d swaps", starts, failed, swaps.Load())
}

// TestNothingLeaksIntoTheContainer checks, from inside, that the container
// sees no descriptor mooring opened, and that env the image sets
// (LD_PRELOAD pointing at a library in the image) never runs on the host.
func TestNothingLeaksIntoTheContainer(t *testing.T) {
	e := newHookEnv(t)
	cc := testenv.RequireTool(t, "gcc")
	marker := filepath.Join(t.TempDir(), "preloaded")
	b := e.bundle(`[{name: fds, target: /data}]`, "ls -l /proc/1/fd/; ls -l /proc/self/fd/")
	lib := filepath.Join(b.Rootfs, "evil.so")
	src := filepath.Join(t.TempDir(), "evil.c")
	os.WriteFile(src, []byte(`#include <stdio.h>
__attribute__((constructor)) static void mark(void) { FILE *f = fopen("`+marker+`", "w"); if (f) fclose(f); }`), 0o644)
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("build the preload library: %v\n%s", err, out)
	}
	// The image asks for the library by its host path too, in case any
	// host process inherited the container's env.
	b.Spec.Process.Env = append(b.Spec.Process.Env, "LD_PRELOAD="+lib+":/evil.so", "MOORING_CONFIG=/evil.toml", "PATH=/evil:/bin")
	b.Save()
	out := e.run(b, "fds")
	for _, bad := range []string{"loop", "mooring", e.scratch.Dir, "mnt/v"} {
		if strings.Contains(out, bad) {
			t.Errorf("a descriptor refers to %q inside the container:\n%s", bad, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the image's LD_PRELOAD library ran on the host")
	}
	if !strings.Contains(e.scratch.Log(), `"volume mounted"`) {
		t.Fatal("the container env changed mooring's config")
	}
}
