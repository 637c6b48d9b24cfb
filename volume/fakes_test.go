package volume

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/mooring-dev/mooring/devices"
)

// fakeKernel models just enough of loop devices, filesystems and mounts
// for the lifecycle's unit tests: autoclear loops detach when the last
// hold (fd or mount) goes, filesystems live on backing files.
type fakeKernel struct {
	mu      sync.Mutex
	next    int
	loops   map[string]*fakeLoopDev  // /dev/loopN
	fs      map[string]devices.Probe // backing file -> filesystem
	corrupt map[string]bool          // backing file -> fsck fails
	mounts  map[string]string        // target -> device
	blocks  map[string]fakeBlock

	formats, checks, attaches int
	probeErr                  error
	// undoWithoutDeadline counts Detach calls whose context had no
	// deadline (an unbounded undo).
	undoWithoutDeadline int
}

type fakeLoopDev struct {
	backing, tag string
	holds        int
}

type fakeBlock struct {
	major, minor uint32
	size         int64
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		loops: map[string]*fakeLoopDev{}, fs: map[string]devices.Probe{},
		corrupt: map[string]bool{}, mounts: map[string]string{}, blocks: map[string]fakeBlock{},
	}
}

func (k *fakeKernel) devices() Devices {
	return Devices{Loops: fakeLoops{k}, FS: fakeFS{k}, Mounts: fakeMounts{k}, Blocks: fakeBlocks{k}}
}

// backingOf maps a device path to the file (or block device) behind it.
func (k *fakeKernel) backingOf(dev string) string {
	if l, ok := k.loops[dev]; ok {
		return l.backing
	}
	return dev
}

func (k *fakeKernel) release(dev string) {
	l, ok := k.loops[dev]
	if !ok {
		return
	}
	l.holds--
	if l.holds <= 0 {
		delete(k.loops, dev) // autoclear
	}
}

func (k *fakeKernel) attachedCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.loops)
}

func (k *fakeKernel) mountCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.mounts)
}

type fakeLoops struct{ k *fakeKernel }

type fakeLoop struct {
	k    *fakeKernel
	path string
	once sync.Once
}

func (l *fakeLoop) Path() string { return l.path }
func (l *fakeLoop) Close() error {
	l.once.Do(func() {
		l.k.mu.Lock()
		defer l.k.mu.Unlock()
		l.k.release(l.path)
	})
	return nil
}

func (f fakeLoops) Attach(ctx context.Context, backing, tag string) (devices.Loop, error) {
	if _, err := os.Stat(backing); err != nil {
		return nil, err
	}
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	path := fmt.Sprintf("/dev/loop%d", f.k.next)
	f.k.next++
	f.k.attaches++
	f.k.loops[path] = &fakeLoopDev{backing: backing, tag: tag, holds: 1}
	return &fakeLoop{k: f.k, path: path}, nil
}

func (f fakeLoops) List(ctx context.Context, prefix string) ([]devices.LoopInfo, error) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	var out []devices.LoopInfo
	for p, l := range f.k.loops {
		if len(l.tag) >= len(prefix) && l.tag[:len(prefix)] == prefix {
			out = append(out, devices.LoopInfo{Path: p, Backing: l.backing, Tag: l.tag})
		}
	}
	return out, nil
}

func (f fakeLoops) Detach(ctx context.Context, path, tag string) error {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		f.k.undoWithoutDeadline++
	}
	l, ok := f.k.loops[path]
	if !ok {
		return nil
	}
	if l.tag != tag || l.holds > 0 {
		return devices.ErrBusy
	}
	delete(f.k.loops, path)
	return nil
}

type fakeFS struct{ k *fakeKernel }

func (f fakeFS) Probe(ctx context.Context, dev string) (devices.Probe, error) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	if f.k.probeErr != nil {
		return devices.Probe{}, f.k.probeErr
	}
	p, ok := f.k.fs[f.k.backingOf(dev)]
	if !ok {
		return devices.Probe{Empty: true, Zeroed: true}, nil
	}
	p.Clean, p.State = false, "" // only Identify reads the state
	return p, nil
}

// Identify says what mkfs left (clean) unless a test marked the filesystem
// dirty or corrupt.
func (f fakeFS) Identify(ctx context.Context, dev string) (devices.Probe, error) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	backing := f.k.backingOf(dev)
	p, ok := f.k.fs[backing]
	if !ok {
		return devices.Probe{}, nil
	}
	if f.k.corrupt[backing] {
		p.Clean, p.State = false, "errors recorded by the kernel"
	}
	return p, nil
}

func (f fakeFS) Format(ctx context.Context, dev, fs, uuid string) error {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	f.k.formats++
	f.k.fs[f.k.backingOf(dev)] = devices.Probe{Type: fs, UUID: uuid, Clean: true}
	return nil
}

func (f fakeFS) Check(ctx context.Context, dev, fs string) error {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	f.k.checks++
	if f.k.corrupt[f.k.backingOf(dev)] {
		return fmt.Errorf("check %s: %w", dev, devices.ErrCorrupt)
	}
	return nil
}

type fakeMounts struct{ k *fakeKernel }

func (f fakeMounts) Mount(dev, target, fs string, readOnly bool) error {
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		return fmt.Errorf("mount target %s: not a directory", target)
	}
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	if _, ok := f.k.mounts[target]; ok {
		return fmt.Errorf("mount %s: already mounted", target)
	}
	if l, ok := f.k.loops[dev]; ok {
		l.holds++
	}
	f.k.mounts[target] = dev
	return nil
}

func (f fakeMounts) Unmount(target string) error {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	dev, ok := f.k.mounts[target]
	if !ok {
		return nil
	}
	delete(f.k.mounts, target)
	f.k.release(dev)
	return nil
}

func (f fakeMounts) Mounted(target string) (bool, error) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	_, ok := f.k.mounts[target]
	return ok, nil
}

type fakeBlocks struct{ k *fakeKernel }

func (f fakeBlocks) Stat(path string) (uint32, uint32, int64, error) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	b, ok := f.k.blocks[path]
	if !ok {
		return 0, 0, 0, fmt.Errorf("%s: not a block device", path)
	}
	return b.major, b.minor, b.size, nil
}
