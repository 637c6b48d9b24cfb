package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// fioJobs are the workloads: 4k random IOPS and 1M sequential bandwidth.
type fioJob struct{ name, rw, bs string }

var fioJobs = []fioJob{
	{"randread-4k", "randread", "4k"}, {"randwrite-4k", "randwrite", "4k"},
	{"read-1m", "read", "1M"}, {"write-1m", "write", "1M"},
}

// args are fio's options for the job, without the file.
func (job fioJob) args() []string {
	return []string{"--name=" + job.name, "--rw=" + job.rw, "--bs=" + job.bs, "--size=256M", "--direct=1",
		"--ioengine=libaio", "--iodepth=16", "--runtime=3", "--time_based", "--output-format=json"}
}

// unit is what fioResult reports for the job.
func (job fioJob) unit() string {
	if job.bs == "1M" {
		return "MB/s"
	}
	return "iops"
}

// BenchmarkVolumeIO runs the same fio jobs (O_DIRECT, libaio, depth 16,
// 256 MiB file, 3 s each) inside a container on a mooring volume, on the
// host on a file in the pool directory (the disk the images live on), on
// a raw loop device with direct I/O over an image in the pool directory
// (the floor: what the loop layer costs without a filesystem inside), and
// on the host on an ext4 image mounted with `mount -o loop` (what podman's
// local volume driver does with --opt o=loop). It reports each result and
// the ratios volume/host-file (goal ≥ 0.9) and rawloop/host-file.
func BenchmarkVolumeIO(b *testing.B) {
	fio := testenv.RequireTool(b, "fio")
	bins, s := lab.Binaries(b), lab.NewScratch(b)
	runc := lab.NewRuntime(b, lab.Runc(b))
	bundle := lab.NewBundle(b, runc.Path, lab.Rootfs(b), "true")
	copyWithLibs(b, fio, bundle.Rootfs)
	bundle.Annotate(annotations.Key, `[{name: io, target: /data, size: 1Gi}]`).AddHooks(bins.Mooring, s)

	loopDir := b.TempDir()
	img := filepath.Join(s.PoolDir, "plain-loop.img")
	mustCmd(b, "truncate", "-s", "1G", img)
	mustCmd(b, "mkfs.ext4", "-q", img)
	mustCmd(b, "mount", "-o", "loop", img, loopDir)
	b.Cleanup(func() { exec.Command("umount", loopDir).Run() })
	raw := filepath.Join(s.PoolDir, "raw-loop.img")
	mustCmd(b, "truncate", "-s", "1G", raw)
	rawDev := strings.TrimSpace(mustCmd(b, "losetup", "--find", "--show", "--direct-io=on", raw))
	b.Cleanup(func() { exec.Command("losetup", "-d", rawDev).Run() })

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, job := range fioJobs {
			args := job.args()
			bundle.Spec.Process.Args = append([]string{"/usr/bin/fio", "--filename=/data/fio.dat"}, args...)
			bundle.Save()
			out, stderr, err := runc.Run(bundle, fmt.Sprintf("fio-%d-%s", i, job.name))
			if err != nil {
				b.Fatalf("fio in the container: %v\n%s", err, stderr)
			}
			vol := fioResult(b, out, job.bs)
			host := fioResult(b, mustCmd(b, fio, append([]string{"--filename=" + filepath.Join(s.PoolDir, "fio.dat")}, args...)...), job.bs)
			loop := fioResult(b, mustCmd(b, fio, append([]string{"--filename=" + filepath.Join(loopDir, "fio.dat")}, args...)...), job.bs)
			rawLoop := fioResult(b, mustCmd(b, fio, append([]string{"--filename=" + rawDev}, args...)...), job.bs)
			unit := job.unit()
			b.ReportMetric(vol, job.name+"-volume-"+unit)
			b.ReportMetric(host, job.name+"-hostfile-"+unit)
			b.ReportMetric(loop, job.name+"-loopmount-"+unit)
			b.ReportMetric(rawLoop, job.name+"-rawloop-"+unit)
			b.ReportMetric(vol/host, job.name+"-volume/hostfile")
			b.ReportMetric(rawLoop/host, job.name+"-rawloop/hostfile")
			if job.bs == "4k" {
				recordGoal(goalResult{name: "4k I/O " + job.rw + ", volume vs host file", base: host, got: vol, unit: "io", minRatio: 0.9})
				recordGoal(goalResult{name: "4k I/O " + job.rw + ", raw loop device vs host file (floor)", base: host, got: rawLoop, unit: "io", minRatio: 0.9})
			}
		}
	}
	b.ReportMetric(0, "ns/op")
}

// fioResult returns IOPS (4k) or MB/s (1M) of fio's JSON output.
func fioResult(b *testing.B, out, bs string) float64 {
	var r struct {
		Jobs []struct {
			Read, Write struct {
				IOPS float64 `json:"iops"`
				BW   float64 `json:"bw"` // KiB/s
			}
		}
	}
	if i := strings.Index(out, "{"); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Jobs) == 0 {
		b.Fatalf("fio output: %v\n%s", err, out)
	}
	j := r.Jobs[0]
	if bs == "1M" {
		return (j.Read.BW + j.Write.BW) * 1024 / 1e6
	}
	return j.Read.IOPS + j.Write.IOPS
}

// copyWithLibs copies a dynamically linked program and the libraries ldd
// lists into rootfs at the same paths.
func copyWithLibs(b *testing.B, program, rootfs string) {
	files := []string{program}
	for _, line := range strings.Split(mustCmd(b, "ldd", program), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		dst := filepath.Join(rootfs, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			b.Fatal(err)
		}
		mustCmd(b, "cp", "-L", f, dst)
	}
}

func mustCmd(b testing.TB, name string, args ...string) string {
	b.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		b.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// BenchmarkRBDVolumeIO runs the fio jobs of BenchmarkVolumeIO inside one
// container (runc with the hooks) on two mooring volumes side by side: one
// in an rbd pool on the FUSE data path (qemu-storage-daemon, else
// rbd-fuse, a loop device with direct I/O on top; the lab's memstore OSD
// on this host) and one in the loop pool, alternating per job so both
// share the machine's load. It reports each result and the ratio
// rbd/loop.
func BenchmarkRBDVolumeIO(b *testing.B) {
	fio := testenv.RequireTool(b, "fio")
	ceph := lab.SharedCeph(b)
	requireFUSEHelper(b)
	bins, s := lab.Binaries(b), lab.NewScratch(b)
	s.WriteConfig(rbdNodeConfig(ceph, "bench", ""))
	runc := lab.NewRuntime(b, lab.Runc(b))
	bundle := lab.NewBundle(b, runc.Path, lab.Rootfs(b), "true")
	copyWithLibs(b, fio, bundle.Rootfs)
	bundle.Annotate(annotations.Key, `[{name: io-rbd, target: /rbd, pool: shared, size: 1Gi}, {name: io-loop, target: /loop, size: 1Gi}]`).AddHooks(bins.Mooring, s)
	b.Cleanup(func() { removeVolume(b, s, "default", "io-rbd") })

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, job := range fioJobs {
			// One container per job: its outputs land in the rootfs.
			script := "mkdir -p /tmp && for v in rbd loop; do /usr/bin/fio --filename=/$v/fio.dat --output=/tmp/$v.json " +
				strings.Join(job.args(), " ") + " || exit 1; done"
			bundle.Spec.Process.Args = []string{"sh", "-c", script}
			bundle.Save()
			if _, stderr, err := runc.Run(bundle, fmt.Sprintf("rbdfio-%d-%s", i, job.name)); err != nil {
				b.Fatalf("fio in the container: %v\n%s\nlog: %s", err, stderr, s.Log())
			}
			res := map[string]float64{}
			for _, v := range []string{"rbd", "loop"} {
				out, err := os.ReadFile(filepath.Join(bundle.Rootfs, "tmp", v+".json"))
				if err != nil {
					b.Fatal(err)
				}
				res[v] = fioResult(b, string(out), job.bs)
				b.ReportMetric(res[v], job.name+"-"+v+"-"+job.unit())
			}
			b.ReportMetric(res["rbd"]/res["loop"], job.name+"-rbd/loop")
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPoolIOOptions runs the fio jobs in one container on three
// volumes side by side: a default loop pool (sparse image, direct I/O), a
// pool with preallocate = true (fallocated image) and a pool with cache =
// "buffered" (the loop device goes through the host's page cache, as
// podman's `mount -o loop` does), each against a file on the host beside
// the images. It reports every result and its ratio to the host file.
func BenchmarkPoolIOOptions(b *testing.B) {
	fio := testenv.RequireTool(b, "fio")
	bins, s := lab.Binaries(b), lab.NewScratch(b)
	s.WriteConfig(fmt.Sprintf(`[pools.prealloc]
driver = "loop"
directory = %[1]q
preallocate = true
max_size = "1Gi"
create_on_demand = true
[pools.buffered]
driver = "loop"
directory = %[1]q
cache = "buffered"
max_size = "1Gi"
create_on_demand = true
`, s.PoolDir))
	runc := lab.NewRuntime(b, lab.Runc(b))
	bundle := lab.NewBundle(b, runc.Path, lab.Rootfs(b), "true")
	copyWithLibs(b, fio, bundle.Rootfs)
	bundle.Annotate(annotations.Key, `[{name: sparse, target: /sparse, size: 1Gi}, {name: prealloc, target: /prealloc, size: 1Gi, pool: prealloc}, {name: buffered, target: /buffered, size: 1Gi, pool: buffered}]`).AddHooks(bins.Mooring, s)
	variants := []string{"sparse", "prealloc", "buffered"}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, job := range fioJobs {
			args := job.args()
			host := fioResult(b, mustCmd(b, fio, append([]string{"--filename=" + filepath.Join(s.PoolDir, "fio.dat")}, args...)...), job.bs)
			b.ReportMetric(host, job.name+"-hostfile-"+job.unit())
			for _, v := range variants {
				bundle.Spec.Process.Args = append([]string{"/usr/bin/fio", "--filename=/" + v + "/fio.dat"}, args...)
				bundle.Save()
				out, stderr, err := runc.Run(bundle, fmt.Sprintf("fio-%d-%s-%s", i, job.name, v))
				if err != nil {
					b.Fatalf("fio on %s: %v\n%s", v, err, stderr)
				}
				got := fioResult(b, out, job.bs)
				b.ReportMetric(got, job.name+"-"+v+"-"+job.unit())
				b.ReportMetric(got/host, job.name+"-"+v+"/hostfile")
			}
		}
	}
	b.ReportMetric(0, "ns/op")
}
