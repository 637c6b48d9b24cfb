package oci

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
)

// Forbidden are container paths a target must not resolve to or below:
// a volume there would shadow the kernel's interfaces (or, under /dev, put
// tenant-written device nodes and files where the runtime masks and binds
// its own).
var Forbidden = []string{"/proc", "/sys", "/dev"}

// CheckInRoot applies the target rule to a resolved path: resolved must be
// strictly below root (both absolute and clean, as the kernel reports
// them) and not at or under a Forbidden path. It returns the path relative
// to the root, starting with "/".
func CheckInRoot(root, resolved string) (string, error) {
	inside, ok := strings.CutPrefix(resolved, strings.TrimSuffix(root, "/"))
	if !ok || (inside != "" && !strings.HasPrefix(inside, "/")) {
		return "", fmt.Errorf("target resolved to %s, outside the container root", resolved)
	}
	if inside == "" || inside == "/" {
		return "", errors.New("target resolves to the container's root")
	}
	return inside, forbidden(inside)
}

// Target is a mount target resolved inside a container root.
type Target struct {
	// File is an O_PATH handle on the target directory; the caller closes it.
	File *os.File
	// Path is the target as the caller's mount namespace names it.
	Path string
	// InRoot is the target relative to the root, starting with "/": what
	// the container will see, with every symlink of the image resolved.
	InRoot string
}

// MkdirInRoot creates target (an absolute container path) as a directory
// inside root, never following a symlink out of it and refusing to create
// through a dangling one, and applies the target rule to where it
// resolved. root is an open directory; its real path is read from the
// descriptor, so a root under a symlinked path is compared correctly.
func MkdirInRoot(root *os.File, target string) (*Target, error) {
	f, err := pathrs.MkdirAllHandle(root, target, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create target inside the container root: %w", err)
	}
	return checked(root, f)
}

// ResolveInRoot opens an existing target inside root, like MkdirInRoot
// without creating anything.
func ResolveInRoot(root *os.File, target string) (*Target, error) {
	f, err := pathrs.OpenatInRoot(root, target)
	if err != nil {
		return nil, fmt.Errorf("resolve target inside the container root: %w", err)
	}
	return checked(root, f)
}

// checked applies the rule to the handle f opened inside root; on error
// it closes f.
func checked(root, f *os.File) (*Target, error) {
	t, err := locate(root, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

func locate(root, f *os.File) (*Target, error) {
	rootPath, err := procfs.ProcSelfFdReadlink(root)
	if err != nil {
		return nil, fmt.Errorf("resolve container root: %w", err)
	}
	resolved, err := procfs.ProcSelfFdReadlink(f)
	if err != nil {
		return nil, fmt.Errorf("resolve target: %w", err)
	}
	inRoot, err := CheckInRoot(rootPath, resolved)
	if err != nil {
		return nil, err
	}
	return &Target{File: f, Path: resolved, InRoot: inRoot}, nil
}

// FreeInRoot prepares target for a node the runtime creates (a raw block
// volume's device, from linux.devices): its parent is created inside root
// like MkdirInRoot (a parent that is the root itself needs nothing), and
// nothing may be at target yet, not even a symlink: the runtime keeps
// whatever it finds there, and the container would use the image's file
// for its volume. It returns the target relative to the root with every
// symlink of its parent resolved.
func FreeInRoot(root *os.File, target string) (string, error) {
	dir, base := path.Split(target)
	dir = path.Clean(dir)
	parent, inRoot := root, "/"
	if dir != "/" {
		t, err := MkdirInRoot(root, dir)
		if err != nil {
			return "", err
		}
		defer t.File.Close()
		parent, inRoot = t.File, t.InRoot
	}
	var st unix.Stat_t
	err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil:
		return "", fmt.Errorf("%s exists in the image; a raw block volume's target must be a free path (the device node is created there)", path.Join(inRoot, base))
	case !errors.Is(err, unix.ENOENT):
		return "", fmt.Errorf("check target inside the container root: %w", err)
	}
	inside := path.Join(inRoot, base)
	return inside, forbidden(inside)
}

// forbidden refuses an in-root path at or under a Forbidden one.
func forbidden(inside string) error {
	for _, f := range Forbidden {
		if inside == f || strings.HasPrefix(inside, f+"/") {
			return fmt.Errorf("target resolves to %s (through a symlink in the image); refusing", inside)
		}
	}
	return nil
}
