package devices

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// Superblock locations and flags of the filesystems mooring makes (ext4:
// struct ext4_super_block, little endian; xfs: struct xfs_dsb, big endian;
// btrfs: struct btrfs_super_block, little endian).
const (
	ext4SuperOffset    = 1024
	ext4MagicOffset    = 0x38
	ext4StateOffset    = 0x3A
	ext4CompatOffset   = 0x5C
	ext4IncompatOff    = 0x60
	ext4ROCompatOffset = 0x64
	ext4UUIDOffset     = 0x68
	ext4OrphanOffset   = 0xE8 // s_last_orphan
	ext4CsumOffset     = 0x3FC
	ext4Magic          = 0xEF53
	ext4Extents        = 0x40    // INCOMPAT_EXTENTS: ext4, not ext2/3
	ext4Recover        = 0x4     // INCOMPAT_RECOVER: the journal needs replaying
	ext4HasJournal     = 0x4     // COMPAT_HAS_JOURNAL
	ext4MetadataCsum   = 0x400   // RO_COMPAT_METADATA_CSUM
	ext4OrphanPresent  = 0x10000 // RO_COMPAT_ORPHAN_PRESENT
	ext4StateValid     = 0x1     // cleanly unmounted
	ext4StateErrors    = 0x2     // the kernel recorded errors

	xfsUUIDOffset       = 32
	xfsVersionOffset    = 100
	xfsSectSizeOffset   = 102
	xfsInProgressOffset = 126 // set by mkfs until it has finished
	xfsIncompatOffset   = 216
	xfsCRCOffset        = 224
	xfsVersion5         = 5
	xfsNeedsRepair      = 1 << 4 // INCOMPAT_NEEDSREPAIR: an interrupted xfs_repair

	btrfsSuperOffset  = 64 << 10
	btrfsCsumStart    = 0x20 // the checksum covers the rest of the 4 KiB
	btrfsFSIDOffset   = 0x20
	btrfsFlagsOffset  = 0x38
	btrfsMagicOffset  = 0x40
	btrfsCsumType     = 0xC4
	btrfsCsumCRC32C   = 0
	btrfsFlagError    = 1 << 2
	superblockReadLen = 4096
)

var (
	xfsMagic   = []byte("XFSB")
	btrfsMagic = []byte("_BHRfS_M")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Identify implements Filesystems: it reads the primary superblock of an
// ext4, xfs or btrfs filesystem in-process, with the state it records. It
// costs one read instead of a blkid and a fsck run, which matters on every
// start of an existing volume. It does not replace the full Probe: a
// device it does not recognise is reported with an empty Type, and callers
// then probe.
func (Tools) Identify(_ context.Context, dev string) (Probe, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Probe{}, fmt.Errorf("identify: %w", err)
	}
	defer f.Close()
	head := make([]byte, ext4SuperOffset+superblockReadLen)
	if _, err := f.ReadAt(head, 0); err != nil {
		return Probe{}, fmt.Errorf("identify %s: %w", dev, err)
	}
	if p, ok := ext4Super(head[ext4SuperOffset:]); ok {
		return p, nil
	}
	if p, ok := xfsSuper(head); ok {
		return p, nil
	}
	bsb := make([]byte, superblockReadLen)
	if _, err := f.ReadAt(bsb, btrfsSuperOffset); err == nil {
		if p, ok := btrfsSuper(bsb); ok {
			return p, nil
		}
	}
	return Probe{}, nil
}

// ext4Super reads an ext4 superblock. Clean is what e2fsck -p itself
// checks before it says "clean": cleanly unmounted, no errors recorded, no
// journal to replay, no orphan inodes to finish, and (with metadata_csum)
// a superblock whose checksum matches. Anything else runs e2fsck -p.
func ext4Super(sb []byte) (Probe, bool) {
	le := binary.LittleEndian
	if le.Uint16(sb[ext4MagicOffset:]) != ext4Magic || le.Uint32(sb[ext4IncompatOff:])&ext4Extents == 0 {
		return Probe{}, false
	}
	p := Probe{Type: FSExt4, UUID: uuidAt(sb, ext4UUIDOffset)}
	state := le.Uint16(sb[ext4StateOffset:])
	rocompat := le.Uint32(sb[ext4ROCompatOffset:])
	switch {
	case rocompat&ext4MetadataCsum != 0 && le.Uint32(sb[ext4CsumOffset:]) != ^crc32.Checksum(sb[:ext4CsumOffset], castagnoli):
		p.State = "superblock checksum mismatch"
	case state&ext4StateErrors != 0:
		p.State = "errors recorded by the kernel"
	case state&ext4StateValid == 0:
		p.State = "not cleanly unmounted"
	case le.Uint32(sb[ext4IncompatOff:])&ext4Recover != 0:
		p.State = "journal needs recovery"
	case le.Uint32(sb[ext4CompatOffset:])&ext4HasJournal == 0:
		p.State = "no journal"
	case le.Uint32(sb[ext4OrphanOffset:]) != 0 || rocompat&ext4OrphanPresent != 0:
		p.State = "orphan inodes to clean up"
	default:
		p.Clean = true
	}
	return p, true
}

// xfsSuper reads an xfs superblock. xfs keeps no "clean" flag: its log is
// replayed by the kernel at mount (fsck.xfs does nothing, by design), and
// every metadata block is verified by its checksum when read. What can be
// told from the superblock alone: a v5 superblock whose checksum matches,
// a finished mkfs, and no interrupted xfs_repair. Only then is it clean.
func xfsSuper(sb []byte) (Probe, bool) {
	if !bytes.Equal(sb[:4], xfsMagic) {
		return Probe{}, false
	}
	be := binary.BigEndian
	p := Probe{Type: FSXFS, UUID: uuidAt(sb, xfsUUIDOffset)}
	sect := int(be.Uint16(sb[xfsSectSizeOffset:]))
	switch {
	case be.Uint16(sb[xfsVersionOffset:])&0xF != xfsVersion5:
		p.State = "not a v5 (checksummed) superblock"
	case sect < 512 || sect > len(sb) || binary.LittleEndian.Uint32(sb[xfsCRCOffset:]) != xfsChecksum(sb[:sect]):
		p.State = "superblock checksum mismatch"
	case sb[xfsInProgressOffset] != 0:
		p.State = "mkfs did not finish"
	case be.Uint32(sb[xfsIncompatOffset:])&xfsNeedsRepair != 0:
		p.State = "an xfs_repair was interrupted (needsrepair)"
	default:
		p.Clean = true
	}
	return p, true
}

// xfsChecksum is the CRC32C of the sector with its checksum field zeroed.
func xfsChecksum(sector []byte) uint32 {
	c := crc32.Update(0, castagnoli, sector[:xfsCRCOffset])
	c = crc32.Update(c, castagnoli, make([]byte, 4))
	return crc32.Update(c, castagnoli, sector[xfsCRCOffset+4:])
}

// btrfsSuper reads a btrfs superblock. btrfs has no fsck on mount: the
// kernel replays its log tree and verifies checksums as it reads. The
// superblock is clean when its own checksum (crc32c, what mkfs.btrfs
// makes) matches and no error flag is set.
func btrfsSuper(sb []byte) (Probe, bool) {
	if !bytes.Equal(sb[btrfsMagicOffset:btrfsMagicOffset+8], btrfsMagic) {
		return Probe{}, false
	}
	le := binary.LittleEndian
	p := Probe{Type: FSBtrfs, UUID: uuidAt(sb, btrfsFSIDOffset)}
	switch {
	case le.Uint16(sb[btrfsCsumType:]) != btrfsCsumCRC32C:
		p.State = "superblock checksum type not verifiable in-process"
	case le.Uint32(sb) != crc32.Checksum(sb[btrfsCsumStart:], castagnoli):
		p.State = "superblock checksum mismatch"
	case le.Uint64(sb[btrfsFlagsOffset:])&btrfsFlagError != 0:
		p.State = "error flag set"
	default:
		p.Clean = true
	}
	return p, true
}

func uuidAt(b []byte, off int) string {
	var u uuid.UUID
	copy(u[:], b[off:off+16])
	return u.String()
}
