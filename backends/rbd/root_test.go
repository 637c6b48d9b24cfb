package rbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/lab"
)

func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }

// node is one test "node": its view of the shared cluster, its data path
// and its run directory.
type node struct {
	*Cluster
	dp    *DataPath
	holds []io.Closer // attach's holds, dropped once mounted
}

// newNode makes node name's cluster handle and data path (FUSE, tool
// given or preferred).
func newNode(t testing.TB, ceph *lab.Ceph, name, fuseTool string) *node {
	t.Helper()
	c := &Cluster{Conf: ceph.Conf, ClientID: ceph.ClientID(name), Pool: ceph.Pool, Node: name, Timeout: 20 * time.Second}
	dp, err := NewDataPath(c, MapFUSE, filepath.Join(t.TempDir(), "run-"+name))
	if err != nil {
		t.Fatal(err)
	}
	if fuseTool != "" {
		dp.FUSETool = fuseTool
	}
	return &node{Cluster: c, dp: dp}
}

// twoNodes returns nodes "node-a" and "node-b" on the shared cluster.
func twoNodes(t testing.TB) (a, b *node, ceph *lab.Ceph) {
	t.Helper()
	ceph = lab.SharedCeph(t)
	return newNode(t, ceph, "node-a", ""), newNode(t, ceph, "node-b", ""), ceph
}

var volumeSeq atomic.Int64

// newVolume creates a fresh volume and removes it (whatever locks
// it has) when the test ends.
func newVolume(t testing.TB, n *node, size int64) string {
	t.Helper()
	image, err := n.Create(context.Background(), "tenant", fmt.Sprintf("v%d", volumeSeq.Add(1)), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if l, err := n.Holder(ctx, image); err == nil && l != nil {
			n.breakLock(ctx, l)
		}
		// A killed helper's watch lingers ~30 s: blocklist it, as a
		// fence would, instead of waiting.
		if ws, err := n.Watchers(ctx, image); err == nil {
			for _, w := range ws {
				n.ceph(ctx, "osd", "blocklist", "add", w)
			}
		}
		if err := n.remove(ctx, image); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return image
}

// attach attaches the image on n and registers a cleanup that unmounts
// what is mounted on the device and detaches it, even on failure.
func attach(t testing.TB, n *node, image string) *Attachment {
	t.Helper()
	a, hold, err := n.dp.Attach(context.Background(), image, devices.TagPrefix+"test-"+image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, h := range n.holds {
			h.Close()
		}
		if err := n.dp.Detach(context.Background(), a); err != nil {
			t.Errorf("cleanup detach: %v", err)
		}
		if left, _ := n.dp.Leftovers(context.Background()); len(left) > 0 {
			t.Errorf("left behind: %+v", left)
		}
	})
	n.holds = append(n.holds, hold)
	return a
}

// mountFS formats (when format) and mounts the attachment's device under
// a temp dir; the returned func unmounts it.
func mountFS(t testing.TB, n *node, a *Attachment, format bool) (string, func() error) {
	t.Helper()
	ctx := context.Background()
	fs := devices.NewFilesystems()
	if format {
		if err := fs.Format(ctx, a.Device, devices.FSExt4, "2f6e5a8e-7c1e-4a52-9d9e-0a1b2c3d4e5f"); err != nil {
			t.Fatal(err)
		}
	} else if err := fs.Check(ctx, a.Device, devices.FSExt4); err != nil {
		t.Fatalf("fsck before mount: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(dir, 0o700)
	m := devices.NewMounter()
	if err := m.Mount(a.Device, dir, devices.FSExt4, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unmount(dir) })
	for _, h := range n.holds {
		h.Close() // the mount keeps the loop device now
	}
	n.holds = nil
	return dir, func() error { return m.Unmount(dir) }
}

func writeSynced(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func TestImageLifecycle(t *testing.T) {
	a, b, _ := twoNodes(t)
	ctx := context.Background()
	image := newVolume(t, a, 64<<20)
	if ok, err := b.Exists(ctx, image); err != nil || !ok {
		t.Fatalf("Exists from node-b = %v, %v", ok, err)
	}
	if size, err := b.Size(ctx, image); err != nil || size != 64<<20 {
		t.Errorf("Size = %d, %v", size, err)
	}
	_, vol, _ := ParseImageName(image)
	if _, err := b.Create(ctx, "tenant", vol, 64<<20); !errors.Is(err, ErrExists) {
		t.Errorf("second Create = %v, want ErrExists", err)
	}
	if rec, err := b.GetRecord(ctx, image); !errors.Is(err, ErrNotFound) {
		t.Errorf("record before the creator wrote one = %s, %v; want ErrNotFound", rec, err)
	}
	rec := map[string]any{"tenant": "tenant", "volume": vol, "formatted": true, "fs": "ext4"}
	if err := a.SetRecord(ctx, image, rec); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetRecord(ctx, image); err != nil || string(got) != `{"formatted":true,"fs":"ext4","tenant":"tenant","volume":"`+vol+`"}` {
		t.Errorf("node-b reads %s, %v; node-a wrote %v", got, err, rec)
	}
	images, err := b.Images(ctx)
	if err != nil || !contains(images, image) {
		t.Errorf("Images = %v, %v; want it to list %s", images, err, image)
	}
	if err := a.Delete(ctx, image); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Exists(ctx, image); err != nil || ok {
		t.Errorf("Exists after Delete = %v, %v", ok, err)
	}
	if _, err := b.GetRecord(ctx, image); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRecord after Delete = %v, want ErrNotFound", err)
	}
	if err := a.Delete(ctx, image); err != nil {
		t.Errorf("Delete of a missing image = %v, want nil", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLease(t *testing.T) {
	a, b, _ := twoNodes(t)
	ctx := context.Background()
	image := newVolume(t, a, 64<<20)

	la, err := a.Acquire(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	if la.Node != "node-a" || la.Since.IsZero() || !strings.Contains(la.Cookie, "node-a") {
		t.Errorf("lease = %+v", la)
	}
	again, err := a.Acquire(ctx, image)
	if err != nil || again.Cookie != la.Cookie {
		t.Errorf("same-node Acquire = %+v, %v; want the same lease %s", again, err, la.Cookie)
	}
	_, err = b.Acquire(ctx, image)
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) || held.Node != "node-a" || !held.Since.Equal(la.Since) {
		t.Fatalf("node-b Acquire = %v, want held by node-a since %s", err, la.Since)
	}
	t.Logf("refusal: %v", err)
	if err := b.Release(ctx, image); !errors.Is(err, ErrNotHolder) {
		t.Errorf("node-b Release = %v, want ErrNotHolder", err)
	}
	if err := b.Delete(ctx, image); !errors.Is(err, ErrHeld) {
		t.Errorf("node-b Delete = %v, want ErrHeld", err)
	}
	if l, err := a.Holder(ctx, image); err != nil || l == nil || l.Cookie != la.Cookie {
		t.Errorf("after node-b's attempts the holder is %+v, %v", l, err)
	}
	leases, err := a.Leases(ctx)
	if err != nil || len(leases) == 0 || !containsLease(leases, image) {
		t.Errorf("node-a Leases = %+v, %v", leases, err)
	}
	if leases, _ := b.Leases(ctx); containsLease(leases, image) {
		t.Errorf("node-b Leases lists %s", image)
	}
	if err := a.Release(ctx, image); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, image); err != nil {
		t.Errorf("second Release = %v", err)
	}
	lb, err := b.Acquire(ctx, image)
	if err != nil || lb.Node != "node-b" {
		t.Fatalf("node-b Acquire after release = %+v, %v", lb, err)
	}
	if err := b.Release(ctx, image); err != nil {
		t.Fatal(err)
	}
}

func containsLease(ls []Lease, image string) bool {
	for _, l := range ls {
		if l.Image == image {
			return true
		}
	}
	return false
}

// forEachFUSETool runs fn as a subtest for each FUSE helper.
func forEachFUSETool(t *testing.T, fn func(t *testing.T, tool string)) {
	for _, tool := range []string{ToolQSD, ToolRBDFuse} {
		t.Run(tool, func(t *testing.T) { fn(t, tool) })
	}
}

// writer is node-a writing to a fresh volume that node-b will want.
type writer struct {
	a, b    *node
	image   string
	lease   *Lease
	att     *Attachment
	dir     string
	unmount func() error
}

// startWriter makes nodes node-a and node-b using tool; node-a takes a new
// volume's lease, attaches, formats, mounts and writes file, synced.
func startWriter(t *testing.T, tool, file, content string) *writer {
	t.Helper()
	ceph := lab.SharedCeph(t)
	w := &writer{a: newNode(t, ceph, "node-a", tool), b: newNode(t, ceph, "node-b", tool)}
	w.image = newVolume(t, w.a, 64<<20)
	var err error
	if w.lease, err = w.a.Acquire(context.Background(), w.image); err != nil {
		t.Fatal(err)
	}
	w.att = attach(t, w.a, w.image)
	w.dir, w.unmount = mountFS(t, w.a, w.att, true)
	if err := writeSynced(filepath.Join(w.dir, file), content); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestHandover: node-a formats, writes and syncs through the FUSE export,
// detaches and releases; node-b takes the lease, attaches and reads.
func TestHandover(t *testing.T) {
	forEachFUSETool(t, func(t *testing.T, tool string) {
		w := startWriter(t, tool, "f", "written on node-a")
		a, b, image, att, unmount := w.a, w.b, w.image, w.att, w.unmount
		ctx := context.Background()
		if err := unmount(); err != nil {
			t.Fatal(err)
		}
		if err := a.dp.Detach(ctx, att); err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx, image); err != nil {
			t.Fatal(err)
		}
		if left, err := a.dp.Leftovers(ctx); err != nil || len(left) > 0 {
			t.Errorf("node-a leftovers after detach: %+v, %v", left, err)
		}

		if _, err := b.Acquire(ctx, image); err != nil {
			t.Fatal(err)
		}
		attB := attach(t, b, image)
		dirB, unmountB := mountFS(t, b, attB, false)
		got, err := os.ReadFile(filepath.Join(dirB, "f"))
		if err != nil || string(got) != "written on node-a" {
			t.Errorf("node-b reads %q, %v", got, err)
		}
		if err := unmountB(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFence: node-a writes through its FUSE export (each helper: a fenced
// rbd-fuse ignores SIGTERM and wedges lookups); node-b is refused,
// fences, and from then node-a's writes fail while node-b, after fsck,
// reads everything node-a synced before the fence.
func TestFence(t *testing.T) {
	forEachFUSETool(t, func(t *testing.T, tool string) {
		w := startWriter(t, tool, "before", "synced before the fence")
		a, b, image, la, att, dir, unmount := w.a, w.b, w.image, w.lease, w.att, w.dir, w.unmount
		ctx := context.Background()
		if _, err := b.Acquire(ctx, image); !errors.Is(err, ErrHeld) {
			t.Fatalf("node-b Acquire while node-a writes = %v, want ErrHeld", err)
		}

		tk, err := b.Fence(ctx, image)
		if err != nil {
			t.Fatal(err)
		}
		if tk.By != "node-b" || tk.From != "node-a" || !tk.FromSince.Equal(la.Since) || len(tk.Blocklisted) == 0 {
			t.Errorf("takeover = %+v", tk)
		}
		if err := writeSynced(filepath.Join(dir, "after"), "written after the fence"); err == nil {
			t.Errorf("node-a wrote and synced after being fenced")
		} else {
			t.Logf("node-a after the fence: %v", err)
		}
		if _, err := a.Acquire(ctx, image); !errors.Is(err, ErrHeld) {
			t.Errorf("node-a Acquire after the fence = %v, want ErrHeld (node-b)", err)
		}
		if err := a.Release(ctx, image); !errors.Is(err, ErrNotHolder) {
			t.Errorf("node-a Release after the fence = %v, want ErrNotHolder", err)
		}
		// node-a tears down locally; it must not hang on its fenced helper.
		if err := unmount(); err != nil {
			t.Fatalf("node-a unmount after the fence: %v", err)
		}
		if err := a.dp.Detach(ctx, att); err != nil {
			t.Fatal(err)
		}

		attB := attach(t, b, image)
		dirB, unmountB := mountFS(t, b, attB, false)
		got, err := os.ReadFile(filepath.Join(dirB, "before"))
		if err != nil || string(got) != "synced before the fence" {
			t.Errorf("node-b reads %q, %v", got, err)
		}
		if err := writeSynced(filepath.Join(dirB, "b"), "node-b writes"); err != nil {
			t.Errorf("node-b cannot write after the takeover: %v", err)
		}
		if err := unmountB(); err != nil {
			t.Fatal(err)
		}
		log, err := b.Takeovers(ctx, image)
		if err != nil || len(log) != 1 || log[0].By != "node-b" || log[0].From != "node-a" {
			t.Errorf("audit = %+v, %v", log, err)
		}
	})
}

// TestPausedOSD: with the OSD stopped, cluster calls and an attach end
// with a deadline error, not a hang, and leave nothing behind; after the
// OSD resumes the volume works.
func TestPausedOSD(t *testing.T) {
	ceph := lab.SharedCeph(t)
	a := newNode(t, ceph, "node-a", "")
	a.Timeout = 5 * time.Second
	ctx := context.Background()
	image := newVolume(t, a, 64<<20)

	if err := ceph.PauseOSD(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ceph.ResumeOSD() })
	_, err := a.Acquire(ctx, image)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire with the OSD stopped = %v, want a deadline error", err)
	}
	t.Logf("Acquire: %v", err)
	_, _, err = a.dp.Attach(ctx, image, devices.TagPrefix+"test-paused")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Attach with the OSD stopped = %v, want a deadline error", err)
	}
	// The helper itself blocks opening the image: it is stopped, not left.
	if _, _, err := a.dp.attachFUSE(ctx, image, devices.TagPrefix+"test-paused"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("FUSE export with the OSD stopped = %v, want a deadline error", err)
	} else {
		t.Logf("FUSE export: %v", err)
	}
	if left, err := a.dp.Leftovers(ctx); err != nil || len(left) > 0 {
		t.Errorf("leftovers after the failed attach: %+v, %v", left, err)
	}
	if err := ceph.ResumeOSD(); err != nil {
		t.Fatal(err)
	}
	a.Timeout = 30 * time.Second
	if _, err := a.Acquire(ctx, image); err != nil {
		t.Fatalf("Acquire after the OSD resumed: %v", err)
	}
	att := attach(t, a, image)
	_, unmount := mountFS(t, a, att, true)
	if err := unmount(); err != nil {
		t.Fatal(err)
	}
}

// TestHelperDeathAndLeftovers: a killed FUSE helper is reported dead, an
// orphaned one is found by Leftovers, and Detach cleans both without
// hanging.
func TestHelperDeathAndLeftovers(t *testing.T) {
	a, _, _ := twoNodes(t)
	ctx := context.Background()
	image := newVolume(t, a, 64<<20)
	if _, err := a.Acquire(ctx, image); err != nil {
		t.Fatal(err)
	}
	att := attach(t, a, image)
	if err := a.dp.Check(att); err != nil {
		t.Fatalf("Check of a live helper: %v", err)
	}
	left, err := a.dp.Leftovers(ctx)
	if err != nil || len(left) != 1 || left[0].Helper.ID != att.Helper.ID || left[0].Image != image {
		t.Fatalf("Leftovers = %+v, %v; want the helper %+v", left, err, att.Helper)
	}
	unix.Kill(att.Helper.PID, unix.SIGKILL)
	waitUntil(10*time.Second, func() bool { return !att.Helper.Alive() })
	if err := a.dp.Check(att); !errors.Is(err, ErrHelperDead) {
		t.Errorf("Check after SIGKILL = %v, want ErrHelperDead", err)
	}
	buf := make([]byte, 4096)
	f, err := os.Open(att.Device)
	if err == nil {
		_, err = f.ReadAt(buf, 1<<20)
		f.Close()
	}
	if err == nil {
		t.Errorf("read through a dead helper succeeded")
	}
	t.Logf("read through a dead helper: %v", err)
	// The orphaned mount is still found, and Detach removes it.
	left, err = a.dp.Leftovers(ctx)
	if err != nil || len(left) != 1 {
		t.Fatalf("Leftovers after the helper died = %+v, %v", left, err)
	}
	if err := a.dp.Detach(ctx, &left[0]); err != nil {
		t.Fatal(err)
	}
	if left, err := a.dp.Leftovers(ctx); err != nil || len(left) > 0 {
		t.Errorf("Leftovers after Detach = %+v, %v", left, err)
	}
}
