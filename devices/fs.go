package devices

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Tool timeouts: below the callers' own (NRI's request timeout is 2 s but
// a first use may run mkfs and fsck; a plugin answers that in time or the
// runtime gives up on it). Generous enough for large volumes.
const (
	probeTimeout  = 10 * time.Second
	formatTimeout = 2 * time.Minute
	checkTimeout  = 5 * time.Minute
)

// A check is only started when the caller's deadline leaves at least
// checkBase plus checkPerSize for every checkSizeUnit of device: about
// twice what a forced e2fsck -p of a mostly empty filesystem takes here
// (0.1 s for 1 GiB, 8.3 s for 4 TiB). It is an estimate: a full
// filesystem takes longer, and a check that overruns it is still not
// killed by the caller.
const (
	checkBase     = time.Second
	checkPerSize  = time.Second
	checkSizeUnit = 256 << 30
)

// Tools probes, formats and checks filesystems with the host's tools.
type Tools struct{}

var _ Filesystems = Tools{}

// NewFilesystems returns the real filesystem tools.
func NewFilesystems() Tools { return Tools{} }

// Probe implements Filesystems with `blkid -p`: a low-level probe of the
// device itself (not the cache), which also reports partition tables and
// other signatures. Exit status 2 means nothing was found, but blkid also
// exits 2 when it cannot read the device: "empty" is only believed once
// the device's head and tail were read here. Any other failure is an
// error, so nobody formats on doubt.
func (Tools) Probe(ctx context.Context, dev string) (Probe, error) {
	out, err := runTool(ctx, probeTimeout, "blkid", "-p", "-o", "export", dev)
	if exitCode(err) == 2 {
		zeroed, err := readEdges(dev)
		if err != nil {
			return Probe{}, fmt.Errorf("probe %s: blkid found nothing, but: %w", dev, err)
		}
		return Probe{Empty: true, Zeroed: zeroed}, nil
	}
	if err != nil {
		return Probe{}, fmt.Errorf("probe %s: %w", dev, err)
	}
	p := Probe{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "TYPE":
			p.Type = v
		case "UUID":
			p.UUID = v
		case "PTTYPE":
			if p.Type == "" {
				p.Type = "partition table " + v
			}
		}
	}
	if p.Type == "" {
		p.Type = "unknown signature"
	}
	return p, nil
}

// Format implements Filesystems. It probes the device itself first and
// refuses anything that is not empty (mkfs.ext4 without a terminal would
// overwrite a filesystem); mkfs.xfs and mkfs.btrfs also run without their
// force flags.
func (t Tools) Format(ctx context.Context, dev, fs, uuid string) error {
	p, err := t.Probe(ctx, dev)
	if err != nil {
		return fmt.Errorf("format %s: %w", dev, err)
	}
	if !p.Empty {
		return fmt.Errorf("format %s: %w: it holds %s %s", dev, ErrNotOurs, p.Type, p.UUID)
	}
	var name string
	var args []string
	// 4 KiB blocks and sectors: once an image is reflinked (a snapshot on
	// xfs or btrfs) direct I/O to it needs 4 KiB alignment, so its loop
	// device gets 4 KiB logical blocks, which a filesystem made with
	// smaller ones (ext4 picks 1 KiB below 512 MiB) cannot be mounted on.
	switch fs {
	case FSExt4:
		name, args = "mkfs.ext4", []string{"-q", "-m", "0", "-b", "4096", "-U", uuid, "-E", "lazy_itable_init=1,lazy_journal_init=1", dev}
	case FSXFS:
		name, args = "mkfs.xfs", []string{"-q", "-s", "size=4096", "-m", "uuid=" + uuid, dev}
	case FSBtrfs:
		name, args = "mkfs.btrfs", []string{"-q", "-U", uuid, dev}
	default:
		return fmt.Errorf("format %s: unsupported filesystem %q", dev, fs)
	}
	// Detached from ctx: a mkfs stopped half-way leaves a device that is
	// neither empty nor a filesystem, and the next attempt starts over (and
	// is stopped again under the same deadline); a finished one makes the
	// next attempt fast. The device was empty, so only time is at stake.
	if _, err := runTool(context.WithoutCancel(ctx), formatTimeout, name, args...); err != nil {
		return fmt.Errorf("format %s: %w", dev, err)
	}
	return nil
}

// Check implements Filesystems. Each tool's exit codes mean different
// things:
//   - e2fsck -p: 0 clean, 1 and 2 errors fixed (safe "preen" fixes only),
//     4 and up errors left or operational failure;
//   - xfs_repair -n: 0 clean, 1 corruption found, 2 a dirty log (the mount
//     replays it, so it is fine);
//   - btrfs check --readonly: 0 clean, anything else errors.
//
// Only e2fsck -p writes. It runs detached from ctx's cancellation, and at
// its own time limit it gets SIGTERM, on which e2fsck stops at a safe
// point between passes; the read-only checkers may be killed at any time.
func (Tools) Check(ctx context.Context, dev, fs string) error {
	if err := haveTimeToCheck(ctx, dev); err != nil {
		return fmt.Errorf("check %s: %w", dev, err)
	}
	var err error
	var ok []int
	switch fs {
	case FSExt4:
		_, err = runToolStopping(context.WithoutCancel(ctx), checkTimeout, unix.SIGTERM, "e2fsck", "-p", dev)
		ok = []int{1, 2}
	case FSXFS:
		_, err = runTool(ctx, checkTimeout, "xfs_repair", "-n", dev)
		ok = []int{2}
	case FSBtrfs:
		_, err = runTool(ctx, checkTimeout, "btrfs", "check", "--readonly", dev)
	default:
		return fmt.Errorf("check %s: unsupported filesystem %q", dev, fs)
	}
	if err == nil {
		return nil
	}
	code := exitCode(err)
	for _, c := range ok {
		if code == c {
			return nil
		}
	}
	if code > 0 {
		return fmt.Errorf("check %s: %w: %w", dev, ErrCorrupt, err)
	}
	return fmt.Errorf("check %s: %w", dev, err)
}

// haveTimeToCheck refuses a check of dev when ctx's deadline leaves less
// than the check may need (see checkBase).
func haveTimeToCheck(ctx context.Context, dev string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	size, err := deviceSize(dev)
	if err != nil {
		return err
	}
	need := checkBase + time.Duration(size/checkSizeUnit)*checkPerSize
	if left := time.Until(deadline); left < need {
		return fmt.Errorf("%w: it may need %s for %d MiB and the caller's limit leaves %s; not starting it (stage the volume once from a front-end with a longer limit, such as the OCI hook, or check it by hand)",
			ErrNoTime, need, size>>20, left.Round(time.Millisecond))
	}
	return nil
}

func deviceSize(dev string) (int64, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return size, nil
}
