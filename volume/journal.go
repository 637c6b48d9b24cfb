package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/atomicfile"
)

// journal stores volume and attachment records as one JSON file each, so a
// record is replaced atomically (temp file, fsync, rename, fsync dir) and a
// crash leaves either the old or the new record, never a torn one.
//
// Layout under the state dir:
//
//	volumes/<tenant>/<name>.json          volume records
//	attachments/<volume-id>/<owner>.json  one owner's claim on one volume
type journal struct {
	dir string
}

const recordSuffix = ".json"

func (j journal) volumePath(tenant, name string) string {
	return filepath.Join(j.dir, "volumes", tenant, name+recordSuffix)
}

func (j journal) attachmentDir(volumeID string) string {
	return filepath.Join(j.dir, "attachments", volumeID)
}

func (j journal) attachmentPath(volumeID, ownerID string) string {
	return filepath.Join(j.attachmentDir(volumeID), ownerID+recordSuffix)
}

func (j journal) readVolume(tenant, name string) (VolumeRecord, error) {
	var v VolumeRecord
	err := readJSON(j.volumePath(tenant, name), &v)
	if errors.Is(err, fs.ErrNotExist) {
		return v, fmt.Errorf("%s/%s: %w", tenant, name, ErrNotFound)
	}
	return v, err
}

func (j journal) writeVolume(v VolumeRecord) error {
	return writeJSON(j.volumePath(v.Tenant, v.Name), v)
}

func (j journal) removeVolume(v VolumeRecord) error {
	return removeFile(j.volumePath(v.Tenant, v.Name))
}

// volumes returns every volume record, sorted by key.
func (j journal) volumes() ([]VolumeRecord, error) {
	var out []VolumeRecord
	tenants, err := readDirNames(filepath.Join(j.dir, "volumes"))
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		vs, err := readRecords[VolumeRecord](filepath.Join(j.dir, "volumes", t))
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key() < out[b].Key() })
	return out, nil
}

func (j journal) readAttachment(volumeID, ownerID string) (Attachment, bool, error) {
	var a Attachment
	err := readJSON(j.attachmentPath(volumeID, ownerID), &a)
	if errors.Is(err, fs.ErrNotExist) {
		return a, false, nil
	}
	return a, err == nil, err
}

func (j journal) writeAttachment(a Attachment) error {
	return writeJSON(j.attachmentPath(a.VolumeID, a.Owner.ID), a)
}

func (j journal) removeAttachment(a Attachment) error {
	if err := removeFile(j.attachmentPath(a.VolumeID, a.Owner.ID)); err != nil {
		return err
	}
	// The per-volume directory goes when its last claim goes; a concurrent
	// writer re-creates it, so ENOTEMPTY and ENOENT are fine.
	if err := os.Remove(j.attachmentDir(a.VolumeID)); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("remove attachment dir: %w", err)
	}
	return nil
}

// attachmentsOf returns the claims on one volume.
func (j journal) attachmentsOf(volumeID string) ([]Attachment, error) {
	return readRecords[Attachment](j.attachmentDir(volumeID))
}

// readRecords reads every record in dir. A record removed while we list
// (a concurrent Release of another owner) is skipped: listings take no lock.
func readRecords[T any](dir string) ([]T, error) {
	names, err := readDirNames(dir)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, n := range names {
		if !strings.HasSuffix(n, recordSuffix) {
			continue
		}
		var rec T
		err := readJSON(filepath.Join(dir, n), &rec)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// attachments returns every claim, sorted by volume then owner.
func (j journal) attachments() ([]Attachment, error) {
	ids, err := readDirNames(filepath.Join(j.dir, "attachments"))
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, id := range ids {
		as, err := j.attachmentsOf(id)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Volume != out[b].Volume {
			return out[a].Volume < out[b].Volume
		}
		return out[a].Owner.ID < out[b].Owner.ID
	})
	return out, nil
}

// readDirNames lists a directory; a missing directory is empty.
func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // temp files of an interrupted write
		}
		names = append(names, e.Name())
	}
	return names, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read journal record: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("journal record %s is corrupt: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode journal record: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// writeFileAtomic creates the record's directory and replaces path
// atomically and durably.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, data, perm)
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove journal record: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
