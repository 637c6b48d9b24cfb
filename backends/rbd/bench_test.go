package rbd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// BenchmarkFUSEIO: fio 4k random read and write (direct, libaio, queue
// depth 16, 3 s) on ext4 on a loop device over each FUSE export of an RBD
// image (memstore OSD on this host), and over a plain sparse image file
// on the host's disk, interleaved in one run so the ratios share the
// machine's load.
func BenchmarkFUSEIO(b *testing.B) {
	fio := testenv.RequireTool(b, "fio")
	ceph := lab.SharedCeph(b)
	targets := map[string]string{"loop-file": plainLoopVolume(b)}
	for _, tool := range []string{ToolQSD, ToolRBDFuse} {
		n := newNode(b, ceph, "bench-"+tool, tool)
		image := newVolume(b, n, 1<<30)
		if _, err := n.Acquire(context.Background(), image); err != nil {
			b.Fatal(err)
		}
		dir, _ := mountFS(b, n, attach(b, n, image), true)
		targets[tool] = dir
	}
	b.ResetTimer()
	for range b.N {
		for _, job := range []string{"randread", "randwrite"} {
			for name, dir := range targets {
				out, _, err := lab.RunCmd(b, time.Minute, nil, fio, "--name="+job, "--filename="+filepath.Join(dir, "fio.dat"),
					"--rw="+job, "--bs=4k", "--size=512M", "--direct=1", "--ioengine=libaio", "--iodepth=16",
					"--runtime=3", "--time_based", "--output-format=json")
				if err != nil {
					b.Fatalf("fio on %s: %v", name, err)
				}
				b.ReportMetric(fioIOPS(b, out), job+"-"+name+"-iops")
			}
		}
	}
	b.ReportMetric(0, "ns/op")
}

// plainLoopVolume is what a loop pool gives: ext4 on a sparse image file
// through a loop device with direct I/O, mounted.
func plainLoopVolume(b *testing.B) string {
	img := filepath.Join(b.TempDir(), "plain.img")
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(1 << 30)
		f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	loop, err := devices.NewLoops().Attach(context.Background(), img, devices.TagPrefix+"bench-plain", devices.CacheDirect)
	if err != nil {
		b.Fatal(err)
	}
	defer loop.Close()
	dir, _ := mountFS(b, &node{}, &Attachment{Device: loop.Path()}, true)
	return dir
}

func fioIOPS(b *testing.B, out string) float64 {
	var r struct {
		Jobs []struct{ Read, Write struct{ IOPS float64 } }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Jobs) == 0 {
		b.Fatalf("fio output: %v\n%.300s", err, out)
	}
	return r.Jobs[0].Read.IOPS + r.Jobs[0].Write.IOPS
}
