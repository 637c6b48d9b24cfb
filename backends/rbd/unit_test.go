package rbd

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestImageNameRoundTrip(t *testing.T) {
	for _, tc := range []struct{ tenant, volume string }{
		{"default", "data"}, {"a", "b"}, {"team-1", "pg-0"}, {"x", "a-b-c"},
	} {
		image, err := ImageName(tc.tenant, tc.volume)
		if err != nil {
			t.Fatalf("ImageName(%q, %q): %v", tc.tenant, tc.volume, err)
		}
		tenant, volume, ok := ParseImageName(image)
		if !ok || tenant != tc.tenant || volume != tc.volume {
			t.Errorf("ParseImageName(%q) = %q, %q, %v; want %q, %q", image, tenant, volume, ok, tc.tenant, tc.volume)
		}
	}
}

func TestImageNameRejects(t *testing.T) {
	for _, tc := range []struct{ tenant, volume string }{
		{"a.b", "c"}, {"a", "b.c"}, {"", "v"}, {"t", ""}, {"T", "v"}, {"t", "v/w"}, {"t", "v@s"}, {"-t", "v"},
	} {
		if image, err := ImageName(tc.tenant, tc.volume); err == nil {
			t.Errorf("ImageName(%q, %q) = %q, want an error", tc.tenant, tc.volume, image)
		}
	}
	for _, image := range []string{"vol1", "mooring.a", "mooring.a.b.c", "mooring..b", "other.a.b", "mooring.A.b"} {
		if _, _, ok := ParseImageName(image); ok {
			t.Errorf("ParseImageName(%q) accepted an image mooring does not name", image)
		}
	}
}

// FuzzImageName: every name ImageName makes parses back to its parts, so
// two volumes never share an image.
func FuzzImageName(f *testing.F) {
	f.Add("default", "data")
	f.Add("a-b", "c-d")
	f.Fuzz(func(t *testing.T, tenant, volume string) {
		image, err := ImageName(tenant, volume)
		if err != nil {
			return
		}
		gt, gv, ok := ParseImageName(image)
		if !ok || gt != tenant || gv != volume {
			t.Fatalf("%q, %q -> %q -> %q, %q, %v", tenant, volume, image, gt, gv, ok)
		}
	})
}

func TestCookieRoundTrip(t *testing.T) {
	since := time.Date(2026, 11, 25, 10, 0, 0, 123, time.UTC)
	node, got, ok := parseCookie(cookie("node-a.example", since))
	if !ok || node != "node-a.example" || !got.Equal(since) {
		t.Fatalf("parseCookie = %q, %v, %v", node, got, ok)
	}
	for _, bad := range []string{"leaseA", "mooring:", "mooring:x:node", "mooring:12", "mooring:-5:node", "mooring:12:bad node", "mooring:12:"} {
		if _, _, ok := parseCookie(bad); ok {
			t.Errorf("parseCookie(%q) accepted a cookie mooring does not make", bad)
		}
	}
}

func TestHeldErrorNamesHolder(t *testing.T) {
	err := (&Lease{Node: "node-a", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}).held("mooring.t.v")
	want := "volume image mooring.t.v is held by node node-a since 2026-01-02T03:04:05Z (fence it only if that node is dead)"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}

func TestParseLocksAndWatchers(t *testing.T) {
	locks, err := parseLocks([]byte(`[{"id":"mooring:1:a","locker":"client.4163","address":"127.0.0.1:0/933191865"}]`))
	if err != nil || len(locks) != 1 || locks[0].Locker != "client.4163" || locks[0].Address != "127.0.0.1:0/933191865" {
		t.Errorf("parseLocks = %+v, %v", locks, err)
	}
	if locks, err := parseLocks([]byte("\n")); err != nil || locks != nil {
		t.Errorf("parseLocks(empty) = %+v, %v", locks, err)
	}
	w, err := parseWatchers([]byte(`{"watchers":[{"address":"127.0.0.1:0/1406908542","client":4143,"cookie":140465160675248}]}`))
	if err != nil || !slices.Equal(w, []string{"127.0.0.1:0/1406908542"}) {
		t.Errorf("parseWatchers = %v, %v", w, err)
	}
}

func TestDeviceArgv(t *testing.T) {
	for _, tc := range []struct {
		got, want []string
	}{
		{mapArgs(MapKernel, "rbd/mooring.t.v"), []string{"device", "map", "-t", "krbd", "rbd/mooring.t.v"}},
		{mapArgs(MapNBD, "rbd/mooring.t.v"), []string{"device", "map", "-t", "nbd", "rbd/mooring.t.v"}},
		{unmapArgs(MapKernel, "/dev/rbd0"), []string{"device", "unmap", "-t", "krbd", "/dev/rbd0"}},
		{unmapArgs(MapNBD, "/dev/nbd3"), []string{"device", "unmap", "-t", "nbd", "/dev/nbd3"}},
		{listArgs(MapNBD), []string{"device", "list", "-t", "nbd", "--format", "json"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("argv %q, want %q", tc.got, tc.want)
		}
	}
	c := &Cluster{Conf: "/etc/ceph/c.conf", ClientID: "node-a", Pool: "p", Node: "a", Timeout: 10 * time.Second}
	want := []string{"--conf", "/etc/ceph/c.conf", "--id", "node-a", "--rados-osd-op-timeout", "9", "--rados-mon-op-timeout", "9", "--client-mount-timeout", "9"}
	if got := c.clientArgs(); !slices.Equal(got, want) {
		t.Errorf("clientArgs %q, want %q", got, want)
	}
}

func TestParseMapped(t *testing.T) {
	for out, want := range map[string]string{"/dev/rbd0\n": "/dev/rbd0", "/dev/nbd12\n": "/dev/nbd12"} {
		if got, err := parseMapped([]byte(out)); err != nil || got != want {
			t.Errorf("parseMapped(%q) = %q, %v", out, got, err)
		}
	}
	for _, bad := range []string{"", "rbd: map failed", "/dev/sda", "/dev/rbd0\n/dev/rbd1"} {
		if got, err := parseMapped([]byte(bad)); err == nil {
			t.Errorf("parseMapped(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseDeviceList(t *testing.T) {
	krbd := `[{"id":"0","pool":"rbd","namespace":"","name":"mooring.t.v","snap":"-","device":"/dev/rbd0"},
{"id":"1","pool":"other","namespace":"","name":"mooring.t.w","snap":"-","device":"/dev/rbd1"},
{"id":"2","pool":"rbd","namespace":"","name":"someone-else","snap":"-","device":"/dev/rbd2"}]`
	got, err := parseDeviceList(MapKernel, "rbd", []byte(krbd))
	if err != nil || len(got) != 1 || got[0].Image != "mooring.t.v" || got[0].Device != "/dev/rbd0" || got[0].Helper != nil {
		t.Fatalf("krbd list = %+v, %v", got, err)
	}
	nbd := `[{"id":4242,"pool":"rbd","namespace":"","image":"mooring.t.v","snap":"-","device":"/dev/nbd0"}]`
	got, err = parseDeviceList(MapNBD, "rbd", []byte(nbd))
	if err != nil || len(got) != 1 || got[0].Device != "/dev/nbd0" || got[0].Helper == nil || got[0].Helper.PID != 4242 {
		t.Fatalf("nbd list = %+v, %v", got, err)
	}
	if got, err := parseDeviceList(MapNBD, "rbd", []byte(`[{"id":"x","pool":"rbd","image":"mooring.t.v","device":"/dev/nbd0"}]`)); err == nil {
		t.Errorf("nbd list with a non-pid id = %+v, want an error", got)
	}
}

func TestDetect(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	if got := Detect(sys, dev); got != MapFUSE {
		t.Errorf("no rbd, no nbd: %s, want fuse", got)
	}
	os.WriteFile(filepath.Join(dev, "nbd0"), nil, 0o600)
	if got := Detect(sys, dev); got != MapNBD {
		t.Errorf("nbd: %s, want nbd", got)
	}
	os.Mkdir(filepath.Join(sys, "rbd"), 0o700)
	if got := Detect(sys, dev); got != MapKernel {
		t.Errorf("rbd: %s, want krbd", got)
	}
}

func TestHelperOf(t *testing.T) {
	dir := "/run/mooring/rbd"
	qsd := []string{"/usr/bin/qemu-storage-daemon", "--blockdev", "driver=rbd,node-name=vol,pool=p,image=mooring.t.v,conf=/c,user=a,cache.direct=on",
		"--export", "type=fuse,id=vol,node-name=vol,mountpoint=/run/mooring/rbd/mooring.t.v,writable=on"}
	if tool, mp, ok := helperOf(qsd, dir); !ok || tool != ToolQSD || mp != dir+"/mooring.t.v" {
		t.Errorf("qsd: %q %q %v", tool, mp, ok)
	}
	rf := []string{"rbd-fuse", "-c", "/c", "-p", "p", "-r", "mooring.t.v", "-f", dir + "/mooring.t.v.d"}
	if tool, mp, ok := helperOf(rf, dir); !ok || tool != ToolRBDFuse || mp != dir+"/mooring.t.v.d" {
		t.Errorf("rbd-fuse: %q %q %v", tool, mp, ok)
	}
	for _, argv := range [][]string{nil, {"/bin/sleep", dir + "/x"}, {"rbd-fuse", "-f", "/elsewhere/x"}} {
		if _, _, ok := helperOf(argv, dir); ok {
			t.Errorf("helperOf(%q) recognised a process that is not ours", argv)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Cluster{Conf: "/c", ClientID: "a", Pool: "p", Node: "node-a"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Cluster{
		{ClientID: "a", Pool: "p", Node: "n"}, {Conf: "/c", Pool: "p", Node: "n"}, {Conf: "/c", ClientID: "a", Node: "n"},
		{Conf: "/c", ClientID: "a", Pool: "p", Node: "a:b"}, {Conf: "/c", ClientID: "a", Pool: "p"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", bad)
		}
	}
}
