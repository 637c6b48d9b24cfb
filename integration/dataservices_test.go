package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
)

// waitFile waits (generously: the machine is shared) until the container
// wrote path in its rootfs, and returns its content.
func waitFile(t *testing.T, e *hookEnv, path string) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the container never wrote %s\nlog: %s", path, e.scratch.Log())
	return ""
}

// start starts a long-running container and deletes it (its poststop
// releases the volume) before the scratch checks what is left.
func (e *hookEnv) start(b *lab.Bundle, id string) {
	e.t.Helper()
	if err := e.runc.Start(b, id); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.runc.Exec("delete", "--force", id) })
}

// mooring runs the CLI against the test's scratch config.
func (e *hookEnv) mooring(args ...string) string {
	e.t.Helper()
	out, errOut, err := lab.RunCmd(e.t, 2*time.Minute, e.scratch.Env(), e.bins.Mooring, args...)
	if err != nil {
		e.t.Fatalf("mooring %v: %v\n%s", args, err, errOut)
	}
	return out
}

// TestHookRuncResizeOnline: a container fills its volume (ENOSPC), the
// volume is grown online with the CLI, and the same container, never
// restarted, writes more.
func TestHookRuncResizeOnline(t *testing.T) {
	e := newHookEnv(t)
	req := `[{name: data, target: /data, size: 320Mi, fs: xfs}]`
	script := `i=0; while dd if=/dev/zero of=/data/f$i bs=1M count=16 2>/tmp/err; do i=$((i+1)); done; cat /tmp/err > /tmp/full
while [ ! -e /tmp/go ]; do sleep 0.1; done
j=0; while [ $j -lt 16 ]; do dd if=/dev/zero of=/data/g$j bs=1M count=16 2>/tmp/err2 || { cat /tmp/err2 > /tmp/done; exit 1; }; j=$((j+1)); done
sync; echo $$ wrote more > /tmp/done; sleep 600`
	b := e.bundle(req, script)
	e.start(b, "filler")
	if full := waitFile(t, e, filepath.Join(b.Rootfs, "tmp/full")); !strings.Contains(full, "No space left") {
		t.Fatalf("the container stopped writing without ENOSPC: %q", full)
	}
	t.Log(e.mooring("volume", "resize", "data", "--size", "640Mi"))
	if err := os.WriteFile(filepath.Join(b.Rootfs, "tmp/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if done := waitFile(t, e, filepath.Join(b.Rootfs, "tmp/done")); !strings.HasSuffix(done, " wrote more\n") {
		t.Fatalf("after the online resize the container wrote: %q", done)
	}
	state, _, err := e.runc.Exec("state", "filler")
	if err != nil || !strings.Contains(state, `"status": "running"`) {
		t.Fatalf("the container is not the same running one: %v %s", err, state)
	}
}

// TestHookRuncSnapshotAndFrom: a snapshot taken with the CLI while a
// container writes is cloned by a request with from:, and the clone grows
// by request in a grow_on_request pool.
func TestHookRuncSnapshotAndFrom(t *testing.T) {
	e := newHookEnv(t)
	e.scratch.WriteConfig(`[pools.elastic]
driver = "loop"
directory = "` + e.scratch.PoolDir + `"
max_size = "1Gi"
grow_on_request = true
tenants = ["*"]
`)
	req := `[{name: app, target: /data, pool: elastic, size: 128Mi}]`
	b := e.bundle(req, "echo template > /data/f && sync && echo ok > /tmp/ready && sleep 600")
	e.start(b, "writer")
	waitFile(t, e, filepath.Join(b.Rootfs, "tmp/ready"))
	e.mooring("volume", "snapshot", "app", "golden")
	if _, _, err := e.runc.Exec("delete", "--force", "writer"); err != nil {
		t.Fatal(err)
	}
	clone := `[{name: work, target: /w, pool: elastic, from: app@golden, size: 256Mi}]`
	out := e.run(e.bundle(clone, "cat /w/f; df -k /w | tail -1"), "reader")
	if !strings.HasPrefix(out, "template\n") {
		t.Fatalf("the clone reads %q", out)
	}
	if kb := dfField(t, out, 1); kb < 200<<10 {
		t.Fatalf("the clone was not grown to the requested 256Mi: %d KiB", kb)
	}
	bigger := `[{name: app, target: /data, pool: elastic, size: 512Mi}]`
	if kb := dfField(t, e.run(e.bundle(bigger, "df -k /data | tail -1"), "grower"), 1); kb < 400<<10 {
		t.Fatalf("grow_on_request: %d KiB", kb)
	}
}

// dfField returns field i (1: size, 2: used, 3: available, in KiB) of the
// last line of busybox df -k output.
func dfField(t *testing.T, out string, i int) int64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 4 {
		t.Fatalf("df output %q", out)
	}
	n, err := strconv.ParseInt(f[i], 10, 64)
	if err != nil {
		t.Fatalf("df output %q: %v", out, err)
	}
	return n
}

// TestHookRuncMetricsMatchDf reads the textfile (mooring metrics
// --textfile) and scrapes mooring-nri --metrics-addr while a container
// runs, and checks the volume figures against df inside the container.
func TestHookRuncMetricsMatchDf(t *testing.T) {
	e := newHookEnv(t)
	b := e.bundle(`[{name: data, target: /data, size: 256Mi}]`,
		"dd if=/dev/zero of=/data/f bs=1M count=20 2>/dev/null && sync && df -i /data > /tmp/dfi && df -k /data > /tmp/df.new && mv /tmp/df.new /tmp/df && sleep 600")
	e.start(b, "measured")
	df := waitFile(t, e, filepath.Join(b.Rootfs, "tmp/df"))
	dfi, err := os.ReadFile(filepath.Join(b.Rootfs, "tmp/dfi"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"mooring_volume_stats_capacity_bytes":  dfField(t, df, 1) << 10,
		"mooring_volume_stats_used_bytes":      dfField(t, df, 2) << 10,
		"mooring_volume_stats_available_bytes": dfField(t, df, 3) << 10,
		"mooring_volume_stats_inodes":          dfField(t, string(dfi), 1),
		"mooring_volume_stats_inodes_used":     dfField(t, string(dfi), 2),
		"mooring_volume_stats_inodes_free":     dfField(t, string(dfi), 3),
	}
	dir := t.TempDir()
	e.mooring("metrics", "--textfile", dir)
	f, err := os.Open(filepath.Join(dir, "mooring.prom"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkMetrics(t, "textfile", f, want)

	if e.bins.NRI == "" {
		t.Fatal("mooring-nri was not built")
	}
	addr := freeAddr(t)
	nri := exec.Command(e.bins.NRI, "--config", e.scratch.ConfigPath, "--socket", filepath.Join(t.TempDir(), "none.sock"),
		"--reconcile-interval", "0", "--metrics-addr", addr)
	if err := nri.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nri.Process.Kill(); nri.Wait() })
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + addr + "/metrics"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("scrape mooring-nri: %v", err)
	}
	defer resp.Body.Close()
	checkMetrics(t, "mooring-nri", resp.Body, want)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// checkMetrics compares the series of volume default/data with want. df
// rounds to KiB, so byte figures may differ by less than 1 KiB.
func checkMetrics(t *testing.T, source string, r io.Reader, want map[string]int64) {
	t.Helper()
	got := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), "{")
		if !ok || !strings.Contains(rest, `tenant="default"`) || !strings.Contains(rest, `volume="data"`) {
			continue
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", source, sc.Text(), err)
		}
		got[name] = v
	}
	for name, w := range want {
		g, ok := got[name]
		tolerance := int64(0)
		if strings.HasSuffix(name, "_bytes") {
			tolerance = 1023
		}
		if !ok || int64(g)-w > tolerance || w-int64(g) > tolerance {
			t.Errorf("%s: %s = %v (present %v), df says %d", source, name, g, ok, w)
		}
	}
	if t.Failed() {
		t.Logf("%s series: %s", source, fmt.Sprint(got))
	}
}
