package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, mode perm, atomically and durably.
// The directory must exist. On error path is untouched and no temp file
// is left.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

// Replace is WriteFile without the directory fsync: readers, and a crash
// of the writing process, see the old content or the new; a host crash
// may bring the old content back, never a torn file (the new content is
// fsynced before the rename). For a record whose old content serves as
// well as the new after a reboot; the directory fsync it saves is one
// journal commit.
func Replace(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

func writeFile(path string, data []byte, perm os.FileMode, syncDir bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = commit(f, path, syncDir, func(f *os.File) error {
		// Before the data: the content is never readable under a wider mode.
		if err := f.Chmod(perm); err != nil {
			return err
		}
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Commit fills the new temp file f (created in path's directory), fsyncs
// and closes it, renames it to path and fsyncs the directory. On any error
// the temp file is removed and path is untouched.
func Commit(f *os.File, path string, fill func(*os.File) error) error {
	return commit(f, path, true, fill)
}

func commit(f *os.File, path string, syncDir bool, fill func(*os.File) error) error {
	err := fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if !syncDir {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, making renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
