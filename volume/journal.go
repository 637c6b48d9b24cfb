package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/internal/atomicfile"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// journal stores volume and attachment records as one JSON file each, so a
// record is replaced atomically (temp file, fsync, rename, fsync dir) and a
// crash leaves either the old or the new record, never a torn one.
//
// Layout under the state dir:
//
//	volumes/<tenant>/<name>.json          volume records
//	attachments/<volume-id>/<owner>.json  one owner's claim on one volume
//
// <owner> is Owner.fileName: front-end, hashed scope and container id.
// Listings skip (and log) a record that does not decode or validate, so
// one corrupt or stray file cannot stop every Release and Reconcile on
// the host; a record read by its name returns the error instead.
type journal struct {
	dir string
	log *slog.Logger
}

const recordSuffix = ".json"

// volumeIDPattern is what newVolumeID makes; ids become paths and tags.
var volumeIDPattern = vocab.Name{Min: 17, Max: 17, First: func(b byte) bool { return b == 'v' }, Rest: vocab.IsLowerHex}

func (j journal) volumePath(tenant, name string) string {
	return filepath.Join(j.dir, "volumes", tenant, name+recordSuffix)
}

func (j journal) attachmentDir(volumeID string) string {
	return filepath.Join(j.dir, "attachments", volumeID)
}

func (j journal) attachmentPath(a Attachment) string {
	if a.file != "" {
		return filepath.Join(j.attachmentDir(a.VolumeID), a.file)
	}
	return filepath.Join(j.attachmentDir(a.VolumeID), a.Owner.fileName())
}

func (j journal) readVolume(tenant, name string) (VolumeRecord, error) {
	var v VolumeRecord
	path := j.volumePath(tenant, name)
	err := readJSON(path, &v)
	if errors.Is(err, fs.ErrNotExist) {
		return v, fmt.Errorf("%s/%s: %w", tenant, name, ErrNotFound)
	}
	if err == nil {
		err = v.check(tenant, name, path)
	}
	return v, err
}

// check validates a volume record read from path, stored under tenant
// and name: its id becomes staging paths and loop tags.
func (v VolumeRecord) check(tenant, name, path string) error {
	if !volumeIDPattern.Match(v.ID) || v.Tenant != tenant || v.Name != name {
		return fmt.Errorf("journal record %s is invalid: id %q, key %s/%s", path, v.ID, v.Tenant, v.Name)
	}
	return nil
}

func (j journal) writeVolume(v VolumeRecord) error {
	return writeJSON(j.volumePath(v.Tenant, v.Name), v)
}

func (j journal) removeVolume(v VolumeRecord) error {
	return removeFile(j.volumePath(v.Tenant, v.Name))
}

// volumes returns every valid volume record, sorted by key.
func (j journal) volumes() ([]VolumeRecord, error) {
	var out []VolumeRecord
	tenants, err := readDirNames(filepath.Join(j.dir, "volumes"))
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		dir := filepath.Join(j.dir, "volumes", t)
		vs, err := readRecords(j, dir, func(v *VolumeRecord, file string) error {
			return v.check(t, strings.TrimSuffix(file, recordSuffix), filepath.Join(dir, file))
		})
		if err != nil {
			j.skip(dir, err)
			continue
		}
		out = append(out, vs...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key() < out[b].Key() })
	return out, nil
}

// findAttachment returns owner's claim on a volume.
func (j journal) findAttachment(volumeID string, owner Owner) (Attachment, bool, error) {
	claims, err := j.attachmentsOf(volumeID)
	if err != nil {
		return Attachment{}, false, err
	}
	for _, c := range claims {
		if c.Owner.SameAs(owner) {
			return c, true, nil
		}
	}
	return Attachment{}, false, nil
}

// writeAttachment records a new claim durably: after a host crash the
// journal still names every volume this host may have attached.
func (j journal) writeAttachment(a Attachment) error {
	return writeJSON(j.attachmentPath(a), a)
}

// updateAttachment replaces an existing claim (same owner, same file)
// atomically, without the directory fsync: if a host crash loses the
// rename, the claim it replaced is back, and after a reboot one step of a
// claim serves as well as another (mounts and loop devices are gone, its
// owner is dead, Reconcile drops it).
func (j journal) updateAttachment(a Attachment) error {
	b, err := encodeRecord(a)
	if err != nil {
		return err
	}
	return atomicfile.Replace(j.attachmentPath(a), b, 0o600)
}

// removeAttachment drops a claim. A claim without backend state is
// removed without a directory fsync: a host crash may bring back a claim
// of a dead owner, which Reconcile drops, with nothing staged (Release
// synced the data before). A claim with backend state (an rbd lease lives
// in the cluster and outlives the host) is removed durably.
func (j journal) removeAttachment(a Attachment) error {
	path := j.attachmentPath(a)
	if a.Backend != nil {
		if err := removeFile(path); err != nil {
			return err
		}
	} else if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove journal record: %w", err)
	}
	// The per-volume directory goes when its last claim goes; a concurrent
	// writer re-creates it, so ENOTEMPTY and ENOENT are fine.
	if err := os.Remove(j.attachmentDir(a.VolumeID)); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("remove attachment dir: %w", err)
	}
	return nil
}

// attachmentsOf returns the valid claims on one volume.
func (j journal) attachmentsOf(volumeID string) ([]Attachment, error) {
	return readRecords(j, j.attachmentDir(volumeID), func(a *Attachment, file string) error {
		a.file = file
		if a.VolumeID != volumeID {
			return fmt.Errorf("claim on volume %q filed under %q", a.VolumeID, volumeID)
		}
		return a.Owner.validateKey()
	})
}

// readRecords reads every record in dir, checking each with check (which
// gets the file name). A record removed while we list (a concurrent
// Release of another owner) is skipped: listings take no lock. A record
// that does not decode or check is skipped and logged.
func readRecords[T any](j journal, dir string, check func(*T, string) error) ([]T, error) {
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
		path := filepath.Join(dir, n)
		err := readJSON(path, &rec)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = check(&rec, n)
		}
		if err != nil {
			j.skip(path, err)
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

// skip logs a journal entry a listing leaves out.
func (j journal) skip(path string, err error) {
	j.log.Error("journal entry skipped: fix or remove it", "path", path, "error", err)
}

// attachments returns every valid claim, sorted by volume then owner.
func (j journal) attachments() ([]Attachment, error) {
	ids, err := readDirNames(filepath.Join(j.dir, "attachments"))
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, id := range ids {
		dir := j.attachmentDir(id)
		if !volumeIDPattern.Match(id) {
			j.skip(dir, errors.New("not a volume id"))
			continue
		}
		as, err := j.attachmentsOf(id)
		if err != nil {
			j.skip(dir, err)
			continue
		}
		out = append(out, as...)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Volume != out[b].Volume {
			return out[a].Volume < out[b].Volume
		}
		return out[a].Owner.Key() < out[b].Owner.Key()
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
	b, err := encodeRecord(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

func encodeRecord(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode journal record: %w", err)
	}
	return append(b, '\n'), nil
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
