package volume

import (
	"context"
	"fmt"
	"io"

	"github.com/mooring-dev/mooring/devices"
)

// Raw block volumes (mode block): the container gets the volume's device,
// so staging is attaching. Nothing is probed, formatted, checked or
// mounted; claims, the journal and release are those of every volume, and
// the last release detaches.

// isStaged reports whether the volume is ready for containers, as
// acquireOne decides whether to share it: a filesystem volume is staged
// when its staging directory is mounted, a raw block volume when its
// device is attached (returned). Caller holds the volume lock.
func (m *Manager) isStaged(ctx context.Context, rec VolumeRecord) (bool, *BlockDevice, error) {
	if !rec.IsBlock() {
		mounted, err := m.dev.Mounts.Mounted(m.stagingDir(rec.ID))
		return mounted, nil, err
	}
	dev, err := m.blockDevice(ctx, rec)
	return dev != nil, dev, err
}

// blockDevice finds a raw block volume's device as its pool's driver
// lists it on this node (a loop device by the volume's tag), with its
// numbers. nil when none is attached, and always for a block pool, whose
// device needs no attaching: staging it again checks its numbers.
func (m *Manager) blockDevice(ctx context.Context, rec VolumeRecord) (*BlockDevice, error) {
	b, err := m.backendOf(rec)
	if err != nil {
		return nil, err
	}
	paths, err := b.Attached(ctx, rec.volume())
	if err != nil || len(paths) == 0 {
		return nil, err
	}
	major, minor, _, err := m.dev.Blocks.Stat(paths[0])
	if err != nil {
		return nil, fmt.Errorf("raw block volume %s: %w", rec.Key(), err)
	}
	return &BlockDevice{Path: paths[0], Major: major, Minor: minor}, nil
}

// stageBlock finishes staging a raw block volume attached at att.Device:
// a loop device is made to stay attached (no mount holds it), and the
// claim's completion records the device and its numbers. stage's undo
// detaches on error.
// A pool device is handed out raw the first time only when it is blank:
// it may hold a removed volume's data, which is not the new tenant's to
// read (a new image file is all holes).
func (m *Manager) stageBlock(ctx context.Context, rec *VolumeRecord, att *Attachment, hold io.Closer, onlyZeroed bool) error {
	if onlyZeroed && !rec.Used {
		p, err := m.dev.FS.Probe(ctx, att.Device)
		if err != nil {
			return fmt.Errorf("probe %s (refusing to hand it out on doubt): %w", att.Device, err)
		}
		if !p.Empty || !p.Zeroed {
			return fmt.Errorf("%w: %s holds %s or its first or last MiB is not zeroed; a pool device is handed out raw the first time only when blank (it may hold an earlier volume's data: zero it, blkdiscard -z, once you are sure)", devices.ErrNotOurs, att.Device, orNothing(p.Type))
		}
	}
	if loop, ok := hold.(devices.Loop); ok {
		if err := loop.Persist(); err != nil {
			return err
		}
	}
	major, minor, _, err := m.dev.Blocks.Stat(att.Device)
	if err != nil {
		return fmt.Errorf("raw block volume %s: %w", rec.Key(), err)
	}
	att.Major, att.Minor, att.Step = major, minor, StepMounted
	return m.j.updateAttachment(*att)
}

// withBlock gives a raw block volume's Staged its device, from the claim
// (which recorded it under the volume lock), and no staging source.
func withBlock(st Staged, rec VolumeRecord, att Attachment) Staged {
	if rec.IsBlock() {
		st.Source, st.FS = "", ""
		st.Block = &BlockDevice{Path: att.Device, Major: att.Major, Minor: att.Minor}
	}
	return st
}
