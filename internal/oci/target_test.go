package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckInRoot(t *testing.T) {
	for _, tc := range []struct {
		root, resolved, inRoot, wantErr string
	}{
		{"/b/rootfs", "/b/rootfs/data", "/data", ""},
		{"/b/rootfs", "/b/rootfs/srv/b", "/srv/b", ""},
		{"/b/rootfs/", "/b/rootfs/data", "/data", ""},
		{"/", "/data", "/data", ""},
		{"/b/rootfs", "/b/rootfs/procfs", "/procfs", ""},
		{"/b/rootfs", "/b/rootfs/devices/x", "/devices/x", ""},
		{"/b/rootfs", "/b/rootfs", "", "the container's root"},
		{"/", "/", "", "the container's root"},
		{"/b/rootfs", "/b/rootfs2/data", "", "outside the container root"},
		{"/b/rootfs", "/etc", "", "outside the container root"},
		{"/b/rootfs", "/b/rootfs/proc", "", "resolves to /proc"},
		{"/b/rootfs", "/b/rootfs/sys/fs/cgroup", "", "resolves to /sys/fs/cgroup"},
		{"/b/rootfs", "/b/rootfs/dev", "", "resolves to /dev"},
		{"/b/rootfs", "/b/rootfs/dev/shm", "", "resolves to /dev/shm"},
		{"/", "/proc/1", "", "resolves to /proc/1"},
	} {
		got, err := CheckInRoot(tc.root, tc.resolved)
		if tc.wantErr == "" && (err != nil || got != tc.inRoot) ||
			tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckInRoot(%q, %q) = %q, %v; want %q, %q", tc.root, tc.resolved, got, err, tc.inRoot, tc.wantErr)
		}
	}
}

// TestMkdirInRoot resolves targets through symlinks an image could carry.
// No privileges needed: openat2 works for any user.
func TestMkdirInRoot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		link    string // /data in the image points here ("" = no link)
		target  string
		inRoot  string // where the target lands, or
		wantErr string // the refusal
	}{
		{"plain", "", "/data", "/data", ""},
		{"nested new dirs", "", "/a/b/c", "/a/b/c", ""},
		{"absolute link inside", "/srv/real", "/data", "/srv/real", ""},
		{"relative link inside", "srv/real", "/data/sub", "/srv/real/sub", ""},
		{"absolute link climbing out", "/../../../srv/real", "/data", "/srv/real", ""},
		{"relative link climbing out", "../../../../srv/real", "/data", "/srv/real", ""},
		{"dangling link", "/nowhere", "/data", "", "not a directory"},
		{"link to proc", "/proc", "/data", "", "resolves to /proc"},
		{"relative link to sys", "../sys/fs", "/data", "", "resolves to /sys/fs"},
		{"link into dev", "/dev", "/data/shm", "", "resolves to /dev/shm"},
		{"link to the root", "/", "/data", "", "the container's root"},
		{"relative link to the root", "..", "/data", "", "the container's root"},
		{"forbidden directly", "", "/dev/x", "", "resolves to /dev/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := newRootfs(t, tc.link)
			root, err := os.Open(rootfs)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			got, err := MkdirInRoot(root, tc.target)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want refusal %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer got.File.Close()
			real, _ := filepath.EvalSymlinks(rootfs)
			if got.InRoot != tc.inRoot || got.Path != filepath.Join(real, tc.inRoot) {
				t.Fatalf("got %q at %q, want %q", got.InRoot, got.Path, tc.inRoot)
			}
			if st, err := os.Lstat(got.Path); err != nil || !st.IsDir() {
				t.Fatalf("target not a directory: %v", err)
			}
			// Found again without creating, at the same place.
			again, err := ResolveInRoot(root, tc.target)
			if err != nil || again.InRoot != tc.inRoot {
				t.Fatalf("ResolveInRoot: %+v %v", again, err)
			}
			again.File.Close()
		})
	}
}

func TestResolveInRootCreatesNothing(t *testing.T) {
	rootfs := newRootfs(t, "")
	root, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := ResolveInRoot(root, "/data"); err == nil {
		t.Fatal("resolved a missing target")
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "data")); !os.IsNotExist(err) {
		t.Fatalf("ResolveInRoot created the target: %v", err)
	}
}

// newRootfs makes an image-like tree with proc, sys/fs, dev and
// srv/real, under a symlinked path (the root's real path comes from its
// descriptor, not from the path it was opened by), with /data -> link.
func newRootfs(t *testing.T, link string) string {
	t.Helper()
	dir := t.TempDir()
	real := filepath.Join(dir, "real-rootfs")
	for _, d := range []string{"proc", "sys/fs", "dev/shm", "srv/real"} {
		if err := os.MkdirAll(filepath.Join(real, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if link != "" {
		if err := os.Symlink(link, filepath.Join(real, "data")); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Symlink(real, rootfs); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// TestFreeInRoot: a raw block volume's node goes to a free path; its
// parent resolves like a mount target, and anything already at the
// target (a file, a directory, a symlink of the image) is refused.
func TestFreeInRoot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		link    string // /data in the image points here ("" = no link)
		target  string
		inRoot  string
		wantErr string
	}{
		{"at the top", "", "/disk", "/disk", ""},
		{"new parents", "", "/a/b/disk", "/a/b/disk", ""},
		{"parent through a link", "/srv/real", "/data/disk", "/srv/real/disk", ""},
		{"parent climbing out", "../../../srv/real", "/data/disk", "/srv/real/disk", ""},
		{"link at the target", "/srv/real/disk", "/data", "", "/data exists in the image"},
		{"dangling link at the target", "/nowhere", "/data", "", "/data exists in the image"},
		{"directory at the target", "", "/srv/real", "", "/srv/real exists in the image"},
		{"parent into dev", "/dev", "/data/vdb", "", "resolves to /dev"},
		{"parent into sys", "/sys/fs", "/data/disk", "", "resolves to /sys/fs"},
		{"parent is the root", "/", "/data/disk", "", "the container's root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := newRootfs(t, tc.link)
			got, err := FreeInRoot(openRoot(t, rootfs), tc.target)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want refusal %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.inRoot {
				t.Fatalf("got %q, %v; want %q", got, err, tc.inRoot)
			}
			if _, err := os.Lstat(filepath.Join(rootfs, tc.inRoot)); !os.IsNotExist(err) {
				t.Fatalf("FreeInRoot created the target itself: %v", err)
			}
		})
	}
}

// openRoot opens a test rootfs, closed when the test ends.
func openRoot(t *testing.T, rootfs string) *os.File {
	t.Helper()
	root, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}
