package volume

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/atomicfile"
	"github.com/mooring-dev/mooring/internal/failpoint"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// The export stream (documented in docs/cli.md): a magic line, a header,
// data records for the image's data extents in increasing offset order
// (holes are not sent and read back as zeros), and a trailer with a
// SHA-256 of every byte before the digest.
const (
	exportMagic     = "mooring-volume v1\n"
	maxHeaderBytes  = 64 << 10
	maxRecordBytes  = 1 << 20
	recordData      = 'D'
	recordEnd       = 'E'
	exportVersion   = 1
	progressEvery   = 64 << 20
	dataRecordFixed = 1 + 8 + 4
)

// ExportHeader describes the exported filesystem.
type ExportHeader struct {
	Version int       `json:"version"`
	Size    int64     `json:"size"`
	FS      string    `json:"fs"`
	FSUUID  string    `json:"fsUUID"`
	Source  string    `json:"source"` // tenant/name or tenant/name@snapshot
	Created time.Time `json:"created"`
}

// Progress is told how many bytes of the image were handled so far.
type Progress func(done, total int64)

// Export writes a consistent copy of a volume to w: of its snapshot snap,
// or (snap empty) of the volume itself, which must be detached and stays
// locked (no Acquire) while it streams.
func (m *Manager) Export(ctx context.Context, tenant, name, snap string, w io.Writer, progress Progress) error {
	if err := validKey(tenant, name); err != nil {
		return err
	}
	rec, lock, err := m.lockedRecord(ctx, tenant, name)
	if err != nil {
		return err
	}
	unlock := lock.Unlock
	defer func() { unlock() }()
	fail := func(err error) error { return fmt.Errorf("export %s: %w", rec.Key(), err) }
	if err := loopOnly(rec, "export"); err != nil {
		return fail(err)
	}
	if err := ready(rec); err != nil {
		return fail(err)
	}
	hdr := ExportHeader{Version: exportVersion, Size: rec.Size, FS: rec.FS, FSUUID: rec.FSUUID, Source: rec.Key(), Created: time.Now().UTC()}
	path := rec.Backing
	if snap != "" {
		s, err := m.j.readSnapshot(rec, snap)
		if err != nil {
			return fail(err)
		}
		if s.Copying {
			return fail(fmt.Errorf("%w: snapshot %s is still being taken", ErrNotReady, s.Ref()))
		}
		hdr.Size, hdr.Source, path = s.Size, rec.Key()+"@"+snap, s.Backing
	} else if err := m.checkDetached(ctx, rec); err != nil {
		return fail(fmt.Errorf("%w; export a snapshot of it instead (mooring volume snapshot, then --snapshot)", err))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if snap != "" {
		// A snapshot never changes and its image is open: the volume
		// need not stay locked while it streams.
		lock.Unlock()
		unlock = func() {}
	}
	if err := writeExport(ctx, f, hdr, w, progress); err != nil {
		return fail(err)
	}
	return nil
}

func writeExport(ctx context.Context, f *os.File, hdr ExportHeader, w io.Writer, progress Progress) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	bw.WriteString(exportMagic)
	binary.Write(bw, binary.BigEndian, uint32(len(js)))
	bw.Write(js)
	var sent int64
	buf := make([]byte, maxRecordBytes)
	err = devices.Extents(f, hdr.Size, func(off, n int64) error {
		for n > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			c := min(n, maxRecordBytes)
			if _, err := f.ReadAt(buf[:c], off); err != nil {
				return fmt.Errorf("read image: %w", err)
			}
			var rh [dataRecordFixed]byte
			rh[0] = recordData
			binary.BigEndian.PutUint64(rh[1:], uint64(off))
			binary.BigEndian.PutUint32(rh[9:], uint32(c))
			bw.Write(rh[:])
			if _, err := bw.Write(buf[:c]); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if progress != nil && (sent+c)/progressEvery != sent/progressEvery {
				progress(off+c, hdr.Size)
			}
			off, n, sent = off+c, n-c, sent+c
		}
		return nil
	})
	if err != nil {
		return err
	}
	var end [9]byte
	end[0] = recordEnd
	binary.BigEndian.PutUint64(end[1:], uint64(sent))
	bw.Write(end[:])
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if progress != nil {
		progress(hdr.Size, hdr.Size)
	}
	return nil
}

// Import creates the volume req.Name of tenant in req.Pool from an export
// stream, refusing an existing name. The stream's checksum is verified
// before the volume is usable; a damaged or truncated stream leaves
// nothing behind. The filesystem keeps its UUID: an import is the same
// filesystem, moved.
func (m *Manager) Import(ctx context.Context, tenant string, req Request, r io.Reader, progress Progress) (VolumeRecord, error) {
	if err := validKey(tenant, req.Name); err != nil {
		return VolumeRecord{}, err
	}
	fail := func(err error) (VolumeRecord, error) {
		return VolumeRecord{}, fmt.Errorf("import %s/%s: %w", tenant, req.Name, err)
	}
	lock, err := m.lockVolume(ctx, tenant, req.Name)
	if err != nil {
		return fail(err)
	}
	defer lock.Unlock()
	if _, err := m.readVolume(ctx, tenant, req.Name); err == nil {
		return fail(ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return fail(err)
	}
	pool, err := m.poolFor(tenant, req.Pool)
	if err != nil {
		return fail(err)
	}
	h := sha256.New()
	br := bufio.NewReaderSize(r, 1<<20)
	in := io.TeeReader(br, h)
	hdr, err := readExportHeader(in)
	if err != nil {
		return fail(err)
	}
	id, err := newVolumeID()
	if err != nil {
		return fail(err)
	}
	rec := VolumeRecord{
		ID: id, Tenant: tenant, Name: req.Name, Pool: pool.Name, Driver: pool.Driver,
		Size: hdr.Size, FS: hdr.FS, FSUUID: hdr.FSUUID, Formatted: true, Created: time.Now().UTC(),
		DataState: DataState{State: StateImporting},
	}
	if err := loopOnly(rec, "import"); err != nil {
		return fail(err)
	}
	if err := m.checkNewPolicy(ctx, pool, rec); err != nil {
		return fail(err)
	}
	rec.Backing = filepath.Join(m.cfg.PoolDirectory(pool.Name), id+".img")
	if err := m.writeVolume(ctx, rec); err != nil {
		return fail(err)
	}
	if err := m.fillImport(ctx, rec, in, br, h, progress); err != nil {
		return fail(errors.Join(err, removeIfExists(rec.Backing+".partial"), m.discardNewVolume(ctx, rec)))
	}
	failpoint.Hit("import:written")
	rec.State = ""
	if err := m.writeVolume(ctx, rec); err != nil {
		return fail(err)
	}
	m.log.Info("volume imported", "volume", rec.Key(), "source", hdr.Source, "size", rec.Size)
	return rec, nil
}

func readExportHeader(in io.Reader) (ExportHeader, error) {
	var hdr ExportHeader
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(in, magic); err != nil || string(magic) != exportMagic {
		return hdr, fmt.Errorf("not a mooring volume export (want a stream from mooring volume export)")
	}
	var n uint32
	if err := binary.Read(in, binary.BigEndian, &n); err != nil {
		return hdr, fmt.Errorf("truncated header: %w", err)
	}
	if n > maxHeaderBytes {
		return hdr, fmt.Errorf("header of %d bytes, more than %d", n, maxHeaderBytes)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(in, js); err != nil {
		return hdr, fmt.Errorf("truncated header: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		return hdr, fmt.Errorf("header: %w", err)
	}
	switch {
	case hdr.Version != exportVersion:
		return hdr, fmt.Errorf("export format version %d; this mooring reads version %d", hdr.Version, exportVersion)
	case hdr.Size <= 0:
		return hdr, fmt.Errorf("header: size %d must be more than zero", hdr.Size)
	case !vocab.IsFilesystem(hdr.FS):
		return hdr, fmt.Errorf("header: filesystem %q is not one mooring makes", hdr.FS)
	}
	if _, err := uuid.Parse(hdr.FSUUID); err != nil {
		return hdr, fmt.Errorf("header: fsUUID %q: %w", hdr.FSUUID, err)
	}
	return hdr, nil
}

// fillImport writes the stream's data records into a new sparse image and
// renames it into place once the trailer's checksum matches.
func (m *Manager) fillImport(ctx context.Context, rec VolumeRecord, in io.Reader, raw io.Reader, h hash.Hash, progress Progress) error {
	tmp := rec.Backing + ".partial"
	if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return devices.MarkNoSpace(err)
	}
	return atomicfile.Commit(out, rec.Backing, func(f *os.File) error {
		if err := f.Truncate(rec.Size); err != nil {
			return devices.MarkNoSpace(err)
		}
		return readStream(ctx, f, rec.Size, in, raw, h, progress)
	})
}

func readStream(ctx context.Context, f *os.File, size int64, in, raw io.Reader, h hash.Hash, progress Progress) error {
	var next, got int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var kind [1]byte
		if _, err := io.ReadFull(in, kind[:]); err != nil {
			return fmt.Errorf("truncated stream: %w", err)
		}
		switch kind[0] {
		case recordData:
			var rh [dataRecordFixed - 1]byte
			if _, err := io.ReadFull(in, rh[:]); err != nil {
				return fmt.Errorf("truncated stream: %w", err)
			}
			off, n := int64(binary.BigEndian.Uint64(rh[:])), int64(binary.BigEndian.Uint32(rh[8:]))
			if off < next || n == 0 || n > maxRecordBytes || off+n > size {
				return fmt.Errorf("damaged stream: data record at %d of %d bytes (image of %d bytes, next offset at least %d)", off, n, size, next)
			}
			if _, err := io.CopyN(io.NewOffsetWriter(f, off), in, n); err != nil {
				return fmt.Errorf("write image: %w", devices.MarkNoSpace(err))
			}
			if progress != nil && (got+n)/progressEvery != got/progressEvery {
				progress(off+n, size)
			}
			next, got = off+n, got+n
		case recordEnd:
			var cnt [8]byte
			if _, err := io.ReadFull(in, cnt[:]); err != nil {
				return fmt.Errorf("truncated stream: %w", err)
			}
			want := h.Sum(nil)
			sum := make([]byte, len(want))
			if _, err := io.ReadFull(raw, sum); err != nil {
				return fmt.Errorf("truncated stream: no checksum: %w", err)
			}
			if !bytes.Equal(sum, want) || int64(binary.BigEndian.Uint64(cnt[:])) != got {
				return errors.New("checksum mismatch: the stream is damaged; nothing was imported")
			}
			if n, _ := raw.Read(make([]byte, 1)); n > 0 {
				return errors.New("damaged stream: data after the checksum")
			}
			if progress != nil {
				progress(size, size)
			}
			return nil
		default:
			return fmt.Errorf("damaged stream: unknown record type %#x", kind[0])
		}
	}
}
