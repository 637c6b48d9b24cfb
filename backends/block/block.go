package block

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/devices"
)

// Pool is one block pool on this host.
type Pool struct {
	Name    string
	Devices []string // in the admin's order
	Blocks  devices.Blocks
}

var _ backends.Backend = (*Pool)(nil)

// Create gives v the first listed device no volume uses; v takes the
// device's whole size.
func (p *Pool) Create(_ context.Context, v *backends.Volume, taken []string) error {
	for _, dev := range p.Devices {
		if slices.Contains(taken, dev) {
			continue
		}
		major, minor, size, err := p.Blocks.Stat(dev)
		if err != nil {
			return fmt.Errorf("pool %q: %w", p.Name, err)
		}
		if v.Size > size {
			return fmt.Errorf("pool %q: %w: device %s has %d bytes, %d asked", p.Name, backends.ErrTooLarge, dev, size, v.Size)
		}
		v.Backing, v.Major, v.Minor, v.Size = dev, major, minor, size
		return nil
	}
	return fmt.Errorf("pool %q: every listed device is in use", p.Name)
}

// Delete forgets the device: it is the admin's, never wiped.
func (p *Pool) Delete(context.Context, backends.Volume) error { return nil }

// Attach checks the device is still the one the volume was made on.
func (p *Pool) Attach(_ context.Context, v backends.Volume) (backends.Attached, error) {
	major, minor, _, err := p.Blocks.Stat(v.Backing)
	if err != nil {
		return backends.Attached{}, err
	}
	if major != v.Major || minor != v.Minor {
		return backends.Attached{}, fmt.Errorf("device %s is now %d:%d but the volume was made on %d:%d; refusing", v.Backing, major, minor, v.Major, v.Minor)
	}
	return backends.Attached{Device: v.Backing, Hold: io.NopCloser(nil)}, nil
}

// Detach has nothing to undo.
func (p *Pool) Detach(context.Context, backends.Volume, string, json.RawMessage) error { return nil }

// Attached is empty: the device is always there.
func (p *Pool) Attached(context.Context, backends.Volume) ([]string, error) { return nil, nil }

// CheckStage has nothing to check: the device's size is fixed.
func (p *Pool) CheckStage(context.Context, backends.Volume) error { return nil }

// Capacity is the sum of the sizes of the listed devices that exist.
func (p *Pool) Capacity(context.Context) (int64, error) {
	var sum int64
	for _, d := range p.Devices {
		if _, _, size, err := p.Blocks.Stat(d); err == nil {
			sum += size
		}
	}
	return sum, nil
}

// Used is the whole device.
func (p *Pool) Used(_ context.Context, v backends.Volume) (int64, error) { return v.Size, nil }

// FormatsOnlyZeroed is true: a listed device may hold data blkid cannot
// name.
func (p *Pool) FormatsOnlyZeroed() bool { return true }
