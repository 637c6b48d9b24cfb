package devices

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/mooring-dev/mooring/internal/faultydev"
	"github.com/mooring-dev/mooring/internal/testenv"
)

func TestEdgeOffsets(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want []int64
	}{
		{512, []int64{0}},
		{edgeLen, []int64{0}},
		{edgeLen + 4096, []int64{0, edgeLen}},
		{2 * edgeLen, []int64{0, edgeLen}},
		{64 << 20, []int64{0, 63 << 20}},
		{64<<20 + 512, []int64{0, 63<<20 + 512}},
	} {
		if got := edgeOffsets(tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("edgeOffsets(%d) = %v, want %v", tc.size, got, tc.want)
		}
	}
}

// TestProbeRefusesUnreadableDevice: blkid finds "nothing" on a device
// whose head fails to read (it exits 2, as for an empty one); Probe reads
// the head itself and refuses, and Format writes nothing.
func TestProbeRefusesUnreadableDevice(t *testing.T) {
	requireRoot(t)
	blkid := testenv.RequireTool(t, "blkid")
	dev := faultydev.New(t, 64<<20, 1<<20)
	err := exec.Command(blkid, "-p", dev.Path).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("blkid -p on an unreadable device: %v, the test expects exit status 2", err)
	}
	tools := NewFilesystems()
	p, err := tools.Probe(context.Background(), dev.Path)
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("probe of an unreadable device: %+v %v, want ErrUnreadable", p, err)
	}
	if err := tools.Format(context.Background(), dev.Path, FSExt4, "0b4c3e1d-55aa-4f00-8a11-c0ffee000020"); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("format of an unreadable device: %v, want ErrUnreadable", err)
	}
	if n := dev.Writes(); n != 0 {
		t.Fatalf("%d writes reached the unreadable device", n)
	}
}

// TestProbeTellsZeroedEnds: an empty device is Zeroed only when its first
// and last MiB are all zeros.
func TestProbeTellsZeroedEnds(t *testing.T) {
	requireRoot(t)
	testenv.RequireTool(t, "blkid")
	for _, tc := range []struct {
		name   string
		at     int64 // where a non-zero byte is written, -1 for none
		zeroed bool
	}{
		{"blank", -1, true},
		{"data in the head", 300 << 10, false},
		{"data in the tail", 64<<20 - 10, false},
		{"data in the middle only", 32 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := attach(t, image(t, 64<<20), testTagPrefix+"edges")
			if tc.at >= 0 {
				f, err := os.OpenFile(l.Path(), os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte{0x5a}, tc.at); err != nil {
					t.Fatal(err)
				}
				f.Sync()
				f.Close()
			}
			p, err := NewFilesystems().Probe(context.Background(), l.Path())
			if err != nil || !p.Empty || p.Zeroed != tc.zeroed {
				t.Fatalf("probe: %+v %v, want empty and zeroed=%v", p, err, tc.zeroed)
			}
		})
	}
}
