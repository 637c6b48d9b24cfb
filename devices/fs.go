package devices

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// Tool timeouts: below the callers' own (NRI's request timeout is 2 s but
// a first use may run mkfs and fsck; a plugin answers that in time or the
// runtime gives up on it). Generous enough for large volumes.
const (
	probeTimeout  = 10 * time.Second
	formatTimeout = 2 * time.Minute
	checkTimeout  = 5 * time.Minute
)

// Tools probes, formats and checks filesystems with the host's tools.
type Tools struct{}

var _ Filesystems = Tools{}

// NewFilesystems returns the real filesystem tools.
func NewFilesystems() Tools { return Tools{} }

// Probe implements Filesystems with `blkid -p`: a low-level probe of the
// device itself (not the cache), which also reports partition tables and
// other signatures. Exit status 2 means nothing was found; any other failure
// is an error, so nobody formats on doubt.
func (Tools) Probe(ctx context.Context, dev string) (Probe, error) {
	out, err := runTool(ctx, probeTimeout, "blkid", "-p", "-o", "export", dev)
	if exitCode(err) == 2 {
		return Probe{Empty: true}, nil
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
	switch fs {
	case FSExt4:
		name, args = "mkfs.ext4", []string{"-q", "-m", "0", "-U", uuid, "-E", "lazy_itable_init=1,lazy_journal_init=1", dev}
	case FSXFS:
		name, args = "mkfs.xfs", []string{"-q", "-m", "uuid=" + uuid, dev}
	case FSBtrfs:
		name, args = "mkfs.btrfs", []string{"-q", "-U", uuid, dev}
	default:
		return fmt.Errorf("format %s: unsupported filesystem %q", dev, fs)
	}
	if _, err := runTool(ctx, formatTimeout, name, args...); err != nil {
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
func (Tools) Check(ctx context.Context, dev, fs string) error {
	var err error
	var ok []int
	switch fs {
	case FSExt4:
		_, err = runTool(ctx, checkTimeout, "e2fsck", "-p", dev)
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
