package annotations

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// forbidden are container paths a volume must not cover: the kernel's
// interfaces, which runtimes mount themselves.
var forbidden = []string{"/proc", "/sys", "/dev"}

// maxTargetBytes is PATH_MAX.
const maxTargetBytes = 4096

func (v Volume) validate() error {
	if err := checkName("name", v.Name, true); err != nil {
		return err
	}
	if err := checkTarget(v.Target); err != nil {
		return err
	}
	if err := checkName("pool", v.Pool, false); err != nil {
		return err
	}
	if v.Size < 0 {
		return fmt.Errorf("size: must be more than zero")
	}
	if v.FS != "" && !vocab.IsFilesystem(v.FS) {
		return fmt.Errorf("fs %q: must be one of %s", v.FS, strings.Join(vocab.Filesystems, ", "))
	}
	if err := checkMode(v); err != nil {
		return err
	}
	return checkFrom(v)
}

func checkName(field, name string, required bool) error {
	if name == "" {
		if required {
			return fmt.Errorf("%s: missing", field)
		}
		return nil
	}
	if !vocab.IsLabel(name) {
		return fmt.Errorf("%s %q: want 1-63 characters a-z, 0-9 and '-', starting and ending with a letter or digit", field, limit(name))
	}
	return nil
}

func checkTarget(t string) error {
	switch {
	case t == "":
		return errors.New("target: missing")
	case len(t) > maxTargetBytes:
		return fmt.Errorf("target: longer than %d bytes", maxTargetBytes)
	case strings.ContainsFunc(t, invisible):
		r, _ := utf8.DecodeRuneInString(t[strings.IndexFunc(t, invisible):])
		return fmt.Errorf("target %q: has a control or invisible character %U", limit(t), r)
	case !path.IsAbs(t):
		return fmt.Errorf("target %q: must be an absolute path", limit(t))
	case slices.Contains(strings.Split(t, "/"), ".."):
		return fmt.Errorf("target %q: must not contain ..", limit(t))
	case path.Clean(t) != t:
		return fmt.Errorf("target %q: must be a clean path (no //, /./ or trailing /)", limit(t))
	case t == "/":
		return fmt.Errorf("target \"/\": must not be the container's root")
	}
	for _, f := range forbidden {
		if within(t, f) {
			return fmt.Errorf("target %q: must not be %s or below it", limit(t), f)
		}
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// checkUnique refuses two volumes with one name, and targets that are equal
// or nested (a mount over another volume's mount would hide it).
func checkUnique(vols []Volume) error {
	for i, a := range vols {
		for j := i + 1; j < len(vols); j++ {
			b := vols[j]
			switch {
			case a.Name == b.Name:
				return fmt.Errorf("volume %d (%q): name: duplicate of volume %d", j+1, b.Name, i+1)
			case a.Target == b.Target:
				return fmt.Errorf("volume %d (%q): target %q: duplicate of volume %d", j+1, b.Name, b.Target, i+1)
			case within(a.Target, b.Target) || within(b.Target, a.Target):
				return fmt.Errorf("volume %d (%q): target %q: nested with volume %d's %q", j+1, b.Name, b.Target, i+1, a.Target)
			}
		}
	}
	return nil
}

// limit keeps error lines short when the input is long.
func limit(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkMode checks the field "mode". A block volume has no filesystem
// and no snapshots to clone from, so fs and from do not go with it.
func checkMode(v Volume) error {
	switch {
	case v.Mode != "" && v.Mode != ModeFilesystem && v.Mode != ModeBlock:
		return fmt.Errorf("mode %q: must be %s or %s", limit(v.Mode), ModeFilesystem, ModeBlock)
	case v.IsBlock() && v.FS != "":
		return fmt.Errorf("fs %q: not with mode block (the container gets the raw device, mooring makes no filesystem on it)", v.FS)
	case v.IsBlock() && v.From != "":
		return errors.New("from: not with mode block (block volumes have no snapshots)")
	}
	return nil
}
