package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// blockPattern is what the writer puts at the start of a raw block
// volume; busybox dd pads it to one 512-byte block (conv=sync).
const blockPattern = "mooring-raw-block-pattern-0123456789"

// Scripts run in the containers. The reader prints the pattern it finds
// and then whether a write was allowed: a read-only volume's device must
// refuse the open for writing (the device cgroup) whatever the node's
// mode says, and the container's root owns the node, so it first makes
// the node writable to all.
const (
	writeBlock = `test -b /disk || { echo "/disk is not a block device"; exit 1; }; ` +
		`printf '` + blockPattern + `' | dd of=/disk bs=512 conv=sync 2>/dev/null && sync`
	readBlock = `test -b /disk || { echo "/disk is not a block device"; exit 1; }; ` +
		`dd if=/disk bs=512 count=1 2>/dev/null | head -c ` + "36" + `; echo; ` +
		`chmod 0666 /disk && if printf x | dd of=/disk bs=512 conv=sync 2>/dev/null; then echo WRITABLE; else echo DENIED; fi`
)

// volumeBacking reads the image file of a scratch volume from its record.
func volumeBacking(t testing.TB, s *lab.Scratch, tenant, name string) string {
	t.Helper()
	var rec struct{ Backing, Mode, FS string }
	raw, err := os.ReadFile(filepath.Join(s.StateDir, "volumes", tenant, name+".json"))
	if err == nil {
		err = json.Unmarshal(raw, &rec)
	}
	if err != nil || rec.Mode != "block" || rec.FS != "" {
		t.Fatalf("volume record %s/%s: %+v, %v", tenant, name, rec, err)
	}
	return rec.Backing
}

// checkBlockReader checks a reader's output: the pattern, then whether it
// could write.
func checkBlockReader(t *testing.T, out, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != blockPattern || lines[1] != want {
		t.Fatalf("reader printed %q, want the pattern and %s", out, want)
	}
}

// TestShimRuncBlockDevice: through the shim and runc, a raw block volume
// is a device node at the target; one container writes a pattern with
// dd, the next reads it back; a read-only one reads it and cannot write;
// the pattern is in the volume's own image (no filesystem was made); a
// request for the volume as a filesystem is refused. Nothing stays
// attached after the last container (the scratch check).
func TestShimRuncBlockDevice(t *testing.T) {
	e := newShimEnv(t)
	rw := `[{name: raw, target: /disk, size: 32Mi, mode: block}]`
	ro := `[{name: raw, target: /disk, mode: block, readOnly: true}]`
	if out, stderr, err := e.shim.Run(e.bundle(rw, writeBlock), "block-w"); err != nil {
		t.Fatalf("writer: %v %q %s\nlog: %s", err, out, stderr, e.scratch.Log())
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after the writer exited", n)
	}
	if loops, _ := e.scratch.Leftovers(); len(loops) != 0 {
		t.Fatalf("device still attached after the last container: %v", loops)
	}
	img, err := os.ReadFile(volumeBacking(t, e.scratch, "default", "raw"))
	if err != nil || !bytes.HasPrefix(img, []byte(blockPattern)) || len(img) != 32<<20 {
		t.Fatalf("image: %d bytes starting %q, %v: want the pattern at the start of the 32 MiB volume", len(img), img[:min(len(img), 40)], err)
	}
	out, stderr, err := e.shim.Run(e.bundle(ro, readBlock), "block-ro")
	if err != nil {
		t.Fatalf("read-only reader: %v %s\nlog: %s", err, stderr, e.scratch.Log())
	}
	checkBlockReader(t, out, "DENIED")
	out, stderr, err = e.shim.Run(e.bundle(rw, readBlock), "block-rw")
	if err != nil {
		t.Fatalf("reader: %v %s\nlog: %s", err, stderr, e.scratch.Log())
	}
	checkBlockReader(t, out, "WRITABLE")

	_, stderr, err = e.shim.Run(e.bundle(`[{name: raw, target: /data}]`, "true"), "block-as-fs")
	if err == nil || !strings.Contains(stderr, "default/raw is a raw block volume (mode block), the request asks for a filesystem") {
		t.Fatalf("filesystem request for a block volume: %v %s", err, stderr)
	}
}

// TestShimRuncBlockTargetMustBeFree: the runtime keeps whatever the image
// has at a device's path, so the shim refuses a target that exists.
func TestShimRuncBlockTargetMustBeFree(t *testing.T) {
	e := newShimEnv(t)
	b := e.bundle(`[{name: raw, target: /etc/passwd, mode: block}]`, "true")
	_, stderr, err := e.shim.Run(b, "block-taken")
	if err == nil || !strings.Contains(stderr, "/etc/passwd exists in the image") {
		t.Fatalf("taken target: %v %s", err, stderr)
	}
	if ids := e.scratch.VolumeIDs(); len(ids) != 0 {
		t.Fatalf("a refused request made volumes %v", ids)
	}
}

// TestHookRuncBlockRefused: the OCI hook cannot allow a device in the
// container's cgroup, so it refuses a raw block request with one line
// naming the front-ends that serve it, and attaches nothing.
func TestHookRuncBlockRefused(t *testing.T) {
	e := newHookEnv(t)
	_, stderr, err := e.runc.Run(e.bundle(`[{name: raw, target: /disk, mode: block}]`, "true"), "hook-block")
	if err == nil || !strings.Contains(stderr, `mode block is not served by the OCI hook`) ||
		!strings.Contains(stderr, "mooring-runtime") || !strings.Contains(stderr, "mooring-nri") {
		t.Fatalf("hook with a block request: %v\n%s", err, stderr)
	}
	if ids := e.scratch.VolumeIDs(); len(ids) != 0 || e.scratch.Attachments() != 0 {
		t.Fatalf("refused request left volumes %v, %d attachments", ids, e.scratch.Attachments())
	}
}

// TestNRIBlockDevice: through the NRI plugin (containerd 2.4 and CRI-O
// 1.34 with CRI), a raw block volume is a device in the container: one
// pod writes a pattern with dd, a later pod reads it back, a read-only
// container of that pod reads it and cannot write even after making the
// node writable to all (the device cgroup refuses). CRI-O applies the
// device but not the plugin's cgroup rules, so there a read-only block
// volume is refused instead of handed out writable.
func TestNRIBlockDevice(t *testing.T) { eachSetup(t, nriSetups, blockDevice) }

func blockDevice(e *criEnv) {
	t := e.t
	readBack := `test -b /disk && test "$(dd if=/disk bs=512 count=1 2>/dev/null | head -c 36)" = ` + blockPattern
	p1 := e.pod("team-b", "writer", map[string]string{annotations.KeyPod: `[{name: raw, target: /disk, size: 32Mi, mode: block}]`})
	if code := e.run(p1, "w", writeBlock); code != 0 {
		t.Fatalf("writer exited %d\n%s", code, e.logs())
	}
	e.removePod(p1)
	waitForAttachments(t, e.scratch, 0)
	img, err := os.ReadFile(volumeBacking(t, e.scratch, "team-b", "raw"))
	if err != nil || !bytes.HasPrefix(img, []byte(blockPattern)) {
		t.Fatalf("the pattern is not at the start of the volume's image: %v\n%s", err, e.logs())
	}
	p2 := e.pod("team-b", "reader", map[string]string{
		annotations.KeyContainerPrefix + "ro": `[{name: raw, target: /disk, mode: block, readOnly: true}]`,
		annotations.KeyPod:                    `[{name: raw, target: /disk, mode: block}]`,
	})
	if code := e.run(p2, "rw", readBack+` && printf x | dd of=/disk bs=512 seek=1 conv=sync 2>/dev/null`); code != 0 {
		t.Fatalf("read-write reader exited %d\n%s", code, e.logs())
	}
	code, err := e.cri.RunContainer(p2, "ro", "sh", "-c", readBack+` && chmod 0666 /disk && ! printf x | dd of=/disk bs=512 seek=2 conv=sync 2>/dev/null`)
	switch {
	case e.ctrd == nil:
		// CRI-O 1.34 keeps the device but drops the plugin's cgroup
		// rules: the plugin refuses before it attaches anything.
		if err == nil || !strings.Contains(err.Error(), `volume "raw": a read-only raw block volume needs the plugin's device cgroup rules, which cri-o does not apply`) {
			t.Fatalf("read-only block volume on CRI-O: exit %d, %v: want the check's refusal\n%s", code, err, e.logs())
		}
	case err != nil || code != 0:
		t.Fatalf("read-only reader: exit %d (1: no pattern, or it could write), %v\n%s", code, err, e.logs())
	}
	e.removePod(p2)
	waitForAttachments(t, e.scratch, 0)
}
