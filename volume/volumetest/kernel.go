package volumetest

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/mooring-dev/mooring/devices"
)

// Kernel models just enough of loop devices, filesystems, mounts and
// block devices for unit tests of the core and its front-ends:
// autoclear loops detach when the last hold (fd or mount) goes,
// filesystems live on backing files, mounts are a table. It implements
// devices.Loops, devices.Filesystems, devices.Mounter and devices.Blocks,
// so one Kernel serves as every field of a volume.Devices.
//
// Tests set the exported maps and errors before use and read the
// counters after; the methods are safe for concurrent use.
type Kernel struct {
	mu    sync.Mutex
	next  int
	loops map[string]*loopDev // /dev/loopN
	// mounts maps a target to its device.
	mounts map[string]string

	// Filesystems maps a backing file (or block device) to the
	// filesystem on it.
	Filesystems map[string]devices.Probe
	// Corrupt marks backing files whose check fails.
	Corrupt map[string]bool
	// Blocks are the block devices Stat knows.
	Blocks map[string]Block
	// ProbeErr, when set, fails every Probe.
	ProbeErr error

	// Formats, Checks and Attaches count the calls made.
	Formats, Checks, Attaches int
	// UndoWithoutDeadline counts Detach calls whose context had no
	// deadline (an unbounded undo).
	UndoWithoutDeadline int
}

type loopDev struct {
	backing, tag string
	holds        int
	persist      bool // autoclear cleared
}

// Block is a block device's numbers and size.
type Block struct {
	Major, Minor uint32
	Size         int64
}

// NewKernel returns a Kernel with nothing attached, formatted or mounted.
func NewKernel() *Kernel {
	return &Kernel{
		loops: map[string]*loopDev{}, Filesystems: map[string]devices.Probe{},
		Corrupt: map[string]bool{}, mounts: map[string]string{}, Blocks: map[string]Block{},
	}
}

// backingOf maps a device path to the file (or block device) behind it.
func (k *Kernel) backingOf(dev string) string {
	if l, ok := k.loops[dev]; ok {
		return l.backing
	}
	return dev
}

func (k *Kernel) release(dev string) {
	l, ok := k.loops[dev]
	if !ok {
		return
	}
	l.holds--
	if l.holds <= 0 && !l.persist {
		delete(k.loops, dev) // autoclear
	}
}

// AttachedCount is the number of loop devices attached.
func (k *Kernel) AttachedCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.loops)
}

// MountCount is the number of mounts.
func (k *Kernel) MountCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.mounts)
}

type loop struct {
	k    *Kernel
	path string
	once sync.Once
}

func (l *loop) Path() string { return l.path }
func (l *loop) Persist() error {
	l.k.mu.Lock()
	defer l.k.mu.Unlock()
	if d, ok := l.k.loops[l.path]; ok {
		d.persist = true
	}
	return nil
}
func (l *loop) Close() error {
	l.once.Do(func() {
		l.k.mu.Lock()
		defer l.k.mu.Unlock()
		l.k.release(l.path)
	})
	return nil
}

func (k *Kernel) Attach(ctx context.Context, backing, tag string, _ devices.Cache) (devices.Loop, error) {
	if _, err := os.Stat(backing); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	path := fmt.Sprintf("/dev/loop%d", k.next)
	k.next++
	k.Attaches++
	k.loops[path] = &loopDev{backing: backing, tag: tag, holds: 1}
	return &loop{k: k, path: path}, nil
}

func (k *Kernel) List(ctx context.Context, prefix string) ([]devices.LoopInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []devices.LoopInfo
	for p, l := range k.loops {
		if len(l.tag) >= len(prefix) && l.tag[:len(prefix)] == prefix {
			n, _ := loopNumber(p)
			out = append(out, devices.LoopInfo{Path: p, Number: n, Backing: l.backing, Tag: l.tag, Major: loopMajor, Minor: uint32(n)})
		}
	}
	return out, nil
}

func (k *Kernel) Detach(ctx context.Context, path, tag string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		k.UndoWithoutDeadline++
	}
	l, ok := k.loops[path]
	if !ok {
		return nil
	}
	if l.tag != tag || l.holds > 0 {
		return devices.ErrBusy
	}
	delete(k.loops, path)
	return nil
}

func (k *Kernel) Probe(ctx context.Context, dev string) (devices.Probe, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ProbeErr != nil {
		return devices.Probe{}, k.ProbeErr
	}
	p, ok := k.Filesystems[k.backingOf(dev)]
	if !ok {
		return devices.Probe{Empty: true, Zeroed: true}, nil
	}
	p.Clean, p.State = false, "" // only Identify reads the state
	return p, nil
}

// Identify says what mkfs left (clean) unless a test marked the filesystem
// dirty or corrupt.
func (k *Kernel) Identify(ctx context.Context, dev string) (devices.Probe, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	backing := k.backingOf(dev)
	p, ok := k.Filesystems[backing]
	if !ok {
		return devices.Probe{}, nil
	}
	if k.Corrupt[backing] {
		p.Clean, p.State = false, "errors recorded by the kernel"
	}
	return p, nil
}

func (k *Kernel) Format(ctx context.Context, dev, fs, uuid string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.Formats++
	k.Filesystems[k.backingOf(dev)] = devices.Probe{Type: fs, UUID: uuid, Clean: true}
	return nil
}

func (k *Kernel) Check(ctx context.Context, dev, fs string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.Checks++
	if k.Corrupt[k.backingOf(dev)] {
		return fmt.Errorf("check %s: %w", dev, devices.ErrCorrupt)
	}
	return nil
}

func (k *Kernel) Mount(dev, target, fs string, readOnly bool) error {
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		return fmt.Errorf("mount target %s: not a directory", target)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.mounts[target]; ok {
		return fmt.Errorf("mount %s: already mounted", target)
	}
	if l, ok := k.loops[dev]; ok {
		l.holds++
	}
	k.mounts[target] = dev
	return nil
}

func (k *Kernel) Unmount(target string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	dev, ok := k.mounts[target]
	if !ok {
		return nil
	}
	delete(k.mounts, target)
	k.release(dev)
	return nil
}

func (k *Kernel) Mounted(target string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.mounts[target]
	return ok, nil
}

// loopMajor is the loop driver's block major.
const loopMajor = 7

func loopNumber(path string) (int, bool) {
	var n int
	_, err := fmt.Sscanf(path, "/dev/loop%d", &n)
	return n, err == nil
}

// Stat implements devices.Blocks: the Blocks map, and attached loops
// (major 7, minor their number).
func (k *Kernel) Stat(path string) (uint32, uint32, int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l, ok := k.loops[path]; ok {
		n, _ := loopNumber(path)
		st, err := os.Stat(l.backing)
		if err != nil {
			return 0, 0, 0, err
		}
		return loopMajor, uint32(n), st.Size(), nil
	}
	b, ok := k.Blocks[path]
	if !ok {
		return 0, 0, 0, fmt.Errorf("%s: not a block device", path)
	}
	return b.Major, b.Minor, b.Size, nil
}

// One Kernel is every device of a volume.Devices.
var (
	_ devices.Loops       = (*Kernel)(nil)
	_ devices.Filesystems = (*Kernel)(nil)
	_ devices.Mounter     = (*Kernel)(nil)
	_ devices.Blocks      = (*Kernel)(nil)
)
