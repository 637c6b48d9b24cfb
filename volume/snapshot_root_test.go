package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/devices"
)

// poolOn makes a filesystem of type fs on a loop file, mounts it and
// returns the mount point, for a pool directory; "" is the host's own
// filesystem under the test's temp dir.
func poolOn(t *testing.T, fs string) string {
	t.Helper()
	if fs == "" {
		return t.TempDir()
	}
	dev := testLoop(t, 4<<30)
	mustRun(t, "mkfs."+fs, "-q", dev)
	dir := t.TempDir()
	mustRun(t, "mount", dev, dir)
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// TestRootSnapshotCloneRestore takes a snapshot of an attached volume in
// a pool on the host's ext4 (a sparse copy), on xfs and on btrfs
// (reflinks); clones it, mounts the clone beside its origin, and restores
// the origin from it.
func TestRootSnapshotCloneRestore(t *testing.T) {
	for _, tc := range []struct{ poolFS, volFS, method string }{
		{"", devices.FSExt4, "copy"},
		{devices.FSXFS, devices.FSXFS, "reflink"},
		{devices.FSXFS, devices.FSExt4, "reflink"},
		{devices.FSBtrfs, devices.FSBtrfs, "reflink"},
	} {
		t.Run("pool-on-"+orHost(tc.poolFS)+"/"+tc.volFS, func(t *testing.T) {
			dir := poolOn(t, tc.poolFS)
			m, _ := rootManagerWith(t, fmt.Sprintf("[pools.p]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\n", dir))
			ctx := context.Background()
			r := Request{Name: "orig", Target: "/d", Pool: "p", FS: tc.volFS, Size: 320 << 20}
			st := mustAcquire(t, m, owner("c"), r)
			writeData(t, st[0].Source, "f", "at snapshot time")

			s, err := m.Snapshot(ctx, "default", "orig", "s1")
			if err != nil {
				t.Fatal(err)
			}
			if s.Method != tc.method || !s.Frozen || s.Copying {
				t.Fatalf("snapshot: %+v, want method %s, frozen", s, tc.method)
			}
			again, err := m.Snapshot(ctx, "default", "orig", "s1")
			if err != nil || again.Created != s.Created {
				t.Fatalf("snapshot retry: %v, %+v", err, again)
			}
			writeData(t, st[0].Source, "f", "after the snapshot")

			clone, err := m.Clone(ctx, "default", Request{Name: "copy", From: "orig@s1"})
			if err != nil {
				t.Fatal(err)
			}
			if clone.CopyMethod != tc.method || clone.FSUUID == s.FSUUID || clone.Pool != "p" {
				t.Fatalf("clone: %+v", clone)
			}
			if _, err := m.Clone(ctx, "default", Request{Name: "copy", From: "orig@s1"}); !errors.Is(err, ErrExists) {
				t.Fatalf("clone over an existing volume: %v", err)
			}
			if _, err := m.Clone(ctx, "other", Request{Name: "x", From: "orig@s1"}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("clone from another tenant: %v", err)
			}
			// The clone mounts beside its origin.
			cst := mustAcquire(t, m, owner("c2"), Request{Name: "copy", Target: "/d"})
			if got := readData(t, cst[0].Source, "f"); got != "at snapshot time" {
				t.Fatalf("clone reads %q", got)
			}
			writeData(t, cst[0].Source, "f", "the clone's own")

			if _, err := m.Restore(ctx, "default", "orig", "s1"); !errors.Is(err, ErrInUse) {
				t.Fatalf("restore while attached: %v", err)
			}
			if err := m.Remove(ctx, "default", "orig"); !errors.Is(err, ErrInUse) {
				t.Fatalf("remove with snapshots: %v", err)
			}
			mustRelease(t, m, "c")
			rr, err := m.Restore(ctx, "default", "orig", "s1")
			if err != nil || rr.State != "" {
				t.Fatalf("restore: %v %+v", err, rr)
			}
			st = mustAcquire(t, m, owner("c3"), r)
			if got := readData(t, st[0].Source, "f"); got != "at snapshot time" {
				t.Fatalf("restored volume reads %q", got)
			}
			if got := readData(t, cst[0].Source, "f"); got != "the clone's own" {
				t.Fatalf("clone reads %q after the restore", got)
			}
			mustRelease(t, m, "c3")
			mustRelease(t, m, "c2")

			if err := m.RemoveSnapshot(ctx, "default", "orig", "s1"); err != nil {
				t.Fatal(err)
			}
			if snaps, _ := m.Snapshots(context.Background(), "default", "orig"); len(snaps) != 0 {
				t.Fatalf("snapshots left: %+v", snaps)
			}
			if _, err := os.Stat(s.Backing); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("snapshot image left: %v", err)
			}
			for _, n := range []string{"orig", "copy"} {
				if err := m.Remove(ctx, "default", n); err != nil {
					t.Fatal(err)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.img*")); len(left) > 0 {
				t.Fatalf("images left in the pool: %v", left)
			}
		})
	}
}

func orHost(fs string) string {
	if fs == "" {
		return "host"
	}
	return fs
}

// TestRootCloneFromAnnotation: a request with from: NAME@SNAP creates the
// missing volume as a clone at Acquire.
func TestRootCloneFromAnnotation(t *testing.T) {
	m, _ := rootManager(t)
	st := mustAcquire(t, m, owner("c"), req("base", "/d"))
	writeData(t, st[0].Source, "f", "template")
	mustRelease(t, m, "c")
	if _, err := m.Snapshot(context.Background(), "default", "base", "golden"); err != nil {
		t.Fatal(err)
	}
	st = mustAcquire(t, m, owner("c2"), Request{Name: "work", Target: "/w", From: "base@golden"})
	if got := readData(t, st[0].Source, "f"); got != "template" {
		t.Fatalf("clone reads %q", got)
	}
	mustRelease(t, m, "c2")
	if _, err := m.Acquire(context.Background(), owner("c3"), []Request{{Name: "w2", Target: "/w", From: "base@nope"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("from a missing snapshot: %v", err)
	}
	if _, err := m.Volume(context.Background(), "default", "w2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed clone left a record: %v", err)
	}
}

// TestRootSnapshotCrashThaws kills a snapshot while the attached volume's
// filesystem is frozen: gc thaws it and removes the partial snapshot, and
// the volume takes writes again.
func TestRootSnapshotCrashThaws(t *testing.T) {
	m, cfgPath := rootManager(t)
	st := mustAcquire(t, m, owner("live"), req("crash", "/d"))
	// Should gc fail to thaw, the test's cleanup must not hang on it.
	t.Cleanup(func() { devices.NewDataOps().Thaw(st[0].Source) })
	runKilled(t, cfgPath, "snapshot", "snapshot:frozen")
	if snaps, _ := m.Snapshots(context.Background(), "default", "crash"); len(snaps) != 1 || !snaps[0].Copying {
		t.Fatalf("after the crash: %+v", snaps)
	}
	if _, err := m.Reconcile(context.Background(), func(o Owner) bool { return o.ID == "live" }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		writeData(t, st[0].Source, "f", "thawed")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the volume is still frozen after gc")
	}
	if snaps, _ := m.Snapshots(context.Background(), "default", "crash"); len(snaps) != 0 {
		t.Fatalf("partial snapshot left: %+v", snaps)
	}
	mustRelease(t, m, "live")
}

// TestRootExportImport moves a volume between two state directories
// (export of a detached volume, and of a snapshot of an attached one): the
// images are byte-identical. A damaged stream and an existing name are
// refused and leave nothing behind.
func TestRootExportImport(t *testing.T) {
	src, _ := rootManager(t)
	dst, _ := rootManager(t)
	ctx := context.Background()
	st := mustAcquire(t, src, owner("c"), Request{Name: "data", Target: "/d", FS: devices.FSXFS, Size: 320 << 20})
	writeData(t, st[0].Source, "f", "moved")
	if err := src.Export(ctx, "default", "data", "", &bytes.Buffer{}, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("export of an attached volume: %v", err)
	}
	if _, err := src.Snapshot(ctx, "default", "data", "s"); err != nil {
		t.Fatal(err)
	}
	var fromSnap bytes.Buffer
	if err := src.Export(ctx, "default", "data", "s", &fromSnap, nil); err != nil {
		t.Fatal(err)
	}
	mustRelease(t, src, "c")
	var stream bytes.Buffer
	if err := src.Export(ctx, "default", "data", "", &stream, nil); err != nil {
		t.Fatal(err)
	}
	orig, _ := src.Volume(context.Background(), "default", "data")
	if stream.Len() > int(orig.Size)/4 {
		t.Errorf("export of a mostly empty %d-byte volume is %d bytes: not sparse", orig.Size, stream.Len())
	}
	damaged := bytes.Clone(stream.Bytes())
	damaged[len(damaged)/2] ^= 0xff
	if _, err := dst.Import(ctx, "default", Request{Name: "data"}, bytes.NewReader(damaged), nil); err == nil {
		t.Fatal("a damaged stream was imported")
	}
	if _, err := dst.Import(ctx, "default", Request{Name: "data"}, bytes.NewReader(stream.Bytes()[:stream.Len()-1]), nil); err == nil {
		t.Fatal("a truncated stream was imported")
	}
	if vols, _ := dst.Volumes(context.Background()); len(vols) != 0 {
		t.Fatalf("failed imports left %+v", vols)
	}
	imp, err := dst.Import(ctx, "default", Request{Name: "data"}, &stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fileSum(t, imp.Backing) != fileSum(t, orig.Backing) || imp.FSUUID != orig.FSUUID || imp.Size != orig.Size {
		t.Fatal("imported image differs from the original")
	}
	if _, err := dst.Import(ctx, "default", Request{Name: "data"}, bytes.NewReader(fromSnap.Bytes()), nil); !errors.Is(err, ErrExists) {
		t.Fatalf("import over an existing volume: %v", err)
	}
	snapImp, err := dst.Import(ctx, "default", Request{Name: "from-snap"}, &fromSnap, nil)
	if err != nil {
		t.Fatal(err)
	}
	st = mustAcquire(t, dst, owner("d"), Request{Name: "data", Target: "/d"})
	if got := readData(t, st[0].Source, "f"); got != "moved" {
		t.Fatalf("imported volume reads %q", got)
	}
	mustRelease(t, dst, "d")
	st = mustAcquire(t, dst, owner("d"), Request{Name: "from-snap", Target: "/d"})
	if got := readData(t, st[0].Source, "f"); got != "moved" || snapImp.FS != devices.FSXFS {
		t.Fatalf("volume imported from a snapshot reads %q", got)
	}
	mustRelease(t, dst, "d")
}

// TestRootStats checks the figures of an attached volume against statfs,
// and that a detached one has none.
func TestRootStats(t *testing.T) {
	m, _ := rootManager(t)
	st := mustAcquire(t, m, owner("c"), req("used", "/d"))
	writeData(t, st[0].Source, "f", string(bytes.Repeat([]byte("x"), 8<<20)))
	mustAcquire(t, m, owner("c2"), req("idle", "/i"))
	mustRelease(t, m, "c2")
	vols, pools, err := m.Stats(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || len(pools) != 1 {
		t.Fatalf("stats: %+v %+v", vols, pools)
	}
	idle, used := vols[0], vols[1]
	fsst := statfs(t, st[0].Source)
	if used.Filesystem == nil || used.Attachments != 1 || used.Filesystem.UsedBytes != int64(fsst.Blocks-fsst.Bfree)*fsst.Bsize ||
		used.Filesystem.UsedBytes < 8<<20 || used.Filesystem.InodesFree != int64(fsst.Ffree) || used.AllocatedBytes < 8<<20 {
		t.Fatalf("attached volume: %+v %+v", used, used.Filesystem)
	}
	if idle.Filesystem != nil || idle.ProvisionedBytes != 1<<30 {
		t.Fatalf("detached volume: %+v", idle)
	}
	if p := pools[0]; p.Provisioned != 2<<30 || p.Volumes != 2 || p.Used < used.AllocatedBytes || p.Capacity == 0 {
		t.Fatalf("pool: %+v", p)
	}
	mustRelease(t, m, "c")
}

// BenchmarkSnapshot1GiB takes snapshots of an attached 1 GiB ext4 volume
// holding 768 MiB of data, in a pool on xfs (reflink) and on the host's
// ext4 (sparse copy), and reports the bytes each snapshot takes.
func BenchmarkSnapshot1GiB(b *testing.B) {
	for _, poolFS := range []string{devices.FSXFS, ""} {
		b.Run("pool-on-"+orHost(poolFS), func(b *testing.B) {
			dir := b.TempDir()
			if poolFS != "" {
				img := filepath.Join(b.TempDir(), "pool.img")
				if err := os.WriteFile(img, nil, 0o600); err != nil {
					b.Fatal(err)
				}
				os.Truncate(img, 8<<30)
				if out, err := exec.Command("mkfs.xfs", "-q", img).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, out)
				}
				if out, err := exec.Command("mount", img, dir).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, out)
				}
				b.Cleanup(func() { exec.Command("umount", dir).Run() })
			}
			m, _ := rootManagerWith(b, fmt.Sprintf("[pools.p]\ndriver = \"loop\"\ndirectory = %q\ntenants = [\"*\"]\n", dir))
			st := mustAcquire(b, m, owner("c"), Request{Name: "big", Target: "/d", Pool: "p", Size: 1 << 30})
			f, err := os.Create(filepath.Join(st[0].Source, "data"))
			if err != nil {
				b.Fatal(err)
			}
			chunk := bytes.Repeat([]byte("mooring!"), 1<<17) // 1 MiB, not all zeros
			for i := 0; i < 768; i++ {
				chunk[0] = byte(i)
				if _, err := f.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			f.Sync()
			f.Close()
			var used int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := statfs(b, dir)
				s, err := m.Snapshot(context.Background(), "default", "big", fmt.Sprintf("s%d", i))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				after := statfs(b, dir)
				used += int64(before.Bfree-after.Bfree) * after.Bsize
				n, _ := devices.Allocated(s.Backing)
				b.Logf("method %s, snapshot file allocates %d bytes", s.Method, n)
				if err := m.RemoveSnapshot(context.Background(), "default", "big", s.Name); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(used)/float64(b.N), "pool-bytes/snapshot")
			b.StopTimer()
			mustRelease(b, m, "c")
		})
	}
}
