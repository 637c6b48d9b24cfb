package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	if c.StateDir != DefaultStateDir || c.RunDir != DefaultRunDir || c.DefaultPool != DefaultPoolName {
		t.Fatalf("default dirs: %+v", c)
	}
	p, err := c.Pool("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Driver != DriverLoop || !p.CreateOnDemand || p.DefaultFS != "ext4" || p.DefaultSize != 1<<30 || !p.Allows("anyone") {
		t.Fatalf("default pool: %+v", p)
	}
	if got := c.PoolDirectory("default"); got != "/var/lib/mooring/pools/default" {
		t.Fatalf("pool directory %q", got)
	}
	if c.EnvTenant != "env" || c.DefaultTenant != "default" {
		t.Fatalf("env requests must have their own tenant: env %q, default %q", c.EnvTenant, c.DefaultTenant)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
state_dir = "/srv/state"
default_pool = "fast"
allow_env_requests = true
env_tenant = "images"
runtimes = ["/usr/local/bin/runc"]
[pools.fast]
driver = "block"
devices = ["/dev/vdb", "/dev/vdc"]
default_fs = "xfs"
create_on_demand = false
tenants = ["team-a"]
[pools.scratch]
driver = "loop"
directory = "/srv/scratch"
default_size = "100Mi"
max_size = "2G"
`))
	if err != nil {
		t.Fatal(err)
	}
	fast, _ := c.Pool("")
	if fast.Name != "fast" || fast.CreateOnDemand || fast.DefaultFS != "xfs" || len(fast.Devices) != 2 {
		t.Fatalf("fast: %+v", fast)
	}
	if !fast.Allows("team-a") || fast.Allows("team-b") {
		t.Fatalf("fast tenants: %v", fast.Tenants)
	}
	s, _ := c.Pool("scratch")
	if s.DefaultSize != 100<<20 || s.MaxSize != 2_000_000_000 || c.PoolDirectory("scratch") != "/srv/scratch" {
		t.Fatalf("scratch: %+v", s)
	}
	if c.RunDir != DefaultRunDir || !c.AllowEnvRequests || c.EnvTenant != "images" || c.Runtimes[0] != "/usr/local/bin/runc" {
		t.Fatalf("globals: %+v", c)
	}
	if _, err := c.Pool("nope"); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("unknown pool: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	const pool = "\n[pools.default]\ndriver = \"loop\"\n"
	for _, tc := range []struct{ name, toml, want string }{
		{"not toml", "state_dir = ", "config:"},
		{"unknown key", `stat_dir = "/x"` + pool, "unknown key stat_dir"},
		{"unknown pool key", pool + `max = "1Gi"`, "unknown key pools.default.max"},
		{"relative state", `state_dir = "var/lib"` + pool, "state_dir \"var/lib\": must be an absolute path"},
		{"unclean run dir", `run_dir = "/run/../etc"` + pool, "must be a clean path"},
		{"bad tenant", `default_tenant = "A_B"` + pool, "default_tenant"},
		{"bad env tenant", `env_tenant = "../x"` + pool, "env_tenant"},
		{"runtime with args", `runtimes = ["runc --debug"]` + pool, "runtimes"},
		{"no default pool", `default_pool = "x"` + pool, `default_pool "x": unknown pool`},
		{"no pools", ``, `default_pool "default": unknown pool`},
		{"bad pool name", "default_pool = \"x\"\n[pools.Fast]\ndriver = \"loop\"", "pools.Fast: pool name"},
		{"no driver", "[pools.default]\n", "driver: missing"},
		{"bad driver", "[pools.default]\ndriver = \"nfs\"", `driver "nfs"`},
		{"loop with devices", pool + `devices = ["/dev/vdb"]`, "devices: only for driver"},
		{"relative directory", pool + `directory = "images"`, "directory \"images\": must be an absolute path"},
		{"block without devices", "[pools.default]\ndriver = \"block\"", "at least one device"},
		{"block outside dev", "[pools.default]\ndriver = \"block\"\ndevices = [\"/etc/passwd\"]", "under /dev/"},
		{"block with directory", "[pools.default]\ndriver = \"block\"\ndirectory = \"/x\"", "directory: only for driver"},
		{"bad size", pool + `default_size = "1Qi"`, "default_size"},
		{"zero size", pool + `max_size = "0"`, "max_size \"0\": must be more than zero"},
		{"default over max", pool + "default_size = \"2Gi\"\nmax_size = \"1Gi\"", "larger than max_size"},
		{"bad fs", pool + `default_fs = "zfs"`, `default_fs "zfs"`},
		{"bad tenant in pool", pool + `tenants = ["Team A"]`, "tenants"},
		{"unknown fs allowed", pool + `filesystems = ["zfs"]`, `filesystems: "zfs" must be one of`},
		{"default fs not allowed", pool + `filesystems = ["xfs"]`, `default_fs "ext4": must be one of xfs`},
		{"bad capacity", pool + `capacity = "lots"`, "capacity"},
		{"zero max volumes", pool + `max_volumes = 0`, "max_volumes 0: must be more than zero"},
		{"bad global max bytes", `max_bytes = "-1"` + pool, "max_bytes"},
		{"bad cache", pool + `cache = "writeback"`, `cache "writeback"`},
		{"preallocate in block pool", "[pools.default]\ndriver = \"block\"\ndevices = [\"/dev/vdb\"]\npreallocate = true", `preallocate and cache: only for driver "loop"`},
		{"bad node name", `node_name = "a:b"` + pool, `node_name "a:b"`},
		{"rbd without rados pool", "[pools.default]\ndriver = \"rbd\"", `rados_pool ""`},
		{"rbd bad map", "[pools.default]\ndriver = \"rbd\"\nrados_pool = \"rbd\"\nmap = \"iscsi\"", `map "iscsi"`},
		{"rbd short timeout", "[pools.default]\ndriver = \"rbd\"\nrados_pool = \"rbd\"\ntimeout = \"1s\"", `timeout "1s"`},
		{"rbd short takeover", "[pools.default]\ndriver = \"rbd\"\nrados_pool = \"rbd\"\ntakeover_after = \"1s\"", `takeover_after "1s"`},
		{"rbd with directory", "[pools.default]\ndriver = \"rbd\"\nrados_pool = \"rbd\"\ndirectory = \"/x\"", "not for driver"},
		{"rbd key in loop pool", pool + `rados_pool = "rbd"`, `rados_pool: only for driver "rbd"`},
		{"device in two pools", "[pools.default]\ndriver = \"block\"\ndevices = [\"/dev/vdb\"]\n[pools.other]\ndriver = \"block\"\ndevices = [\"/dev/vdb\"]", `/dev/vdb is also listed in pool "default"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// TestParseQuotas checks capacity, filesystems and the per-tenant limits:
// a pool's keys override the top-level defaults, and a block pool shared
// by several tenants gives each one device unless the admin says more.
func TestParseQuotas(t *testing.T) {
	c, err := Parse([]byte(`
max_volumes = 10
max_bytes = "100Gi"
[pools.default]
driver = "loop"
capacity = "500Gi"
filesystems = ["ext4"]
max_volumes = 3
[pools.plain]
driver = "loop"
[pools.shared]
driver = "block"
devices = ["/dev/vdb", "/dev/vdc"]
[pools.mine]
driver = "block"
devices = ["/dev/vdd", "/dev/vde"]
tenants = ["team-a"]
max_bytes = "1Ti"
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pool     string
		capacity int64
		fs       []string
		volumes  int
		bytes    int64
	}{
		{"default", 500 << 30, []string{"ext4"}, 3, 100 << 30},
		{"plain", 0, []string{"ext4", "xfs", "btrfs"}, 10, 100 << 30},
		{"shared", 0, []string{"ext4", "xfs", "btrfs"}, 1, 100 << 30},
		{"mine", 0, []string{"ext4", "xfs", "btrfs"}, 10, 1 << 40},
	} {
		p, _ := c.Pool(tc.pool)
		if p.Capacity != tc.capacity || !slices.Equal(p.Filesystems, tc.fs) || p.MaxVolumes != tc.volumes || p.MaxBytes != tc.bytes {
			t.Errorf("pool %s: capacity %d fs %v max_volumes %d max_bytes %d; want %+v", tc.pool, p.Capacity, p.Filesystems, p.MaxVolumes, p.MaxBytes, tc)
		}
	}
	shared, _ := Parse([]byte("[pools.default]\ndriver = \"block\"\ndevices = [\"/dev/vdb\"]\n"))
	if p, _ := shared.Pool(""); p.MaxVolumes != 1 {
		t.Errorf("a shared block pool without limits gives a tenant %d devices, want 1", p.MaxVolumes)
	}
}

// TestCreateOnDemandDefault: a pool creates volumes on demand by default
// only when the admin listed its tenants.
func TestCreateOnDemandDefault(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  bool
	}{
		{"", false},
		{`tenants = ["*"]`, true},
		{`tenants = ["team-a"]`, true},
		{"create_on_demand = true", true},
		{"tenants = [\"team-a\"]\ncreate_on_demand = false", false},
	} {
		c, err := Parse([]byte("[pools.default]\ndriver = \"loop\"\n" + tc.extra))
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := c.Pool(""); p.CreateOnDemand != tc.want {
			t.Errorf("%q: create_on_demand %v, want %v", tc.extra, p.CreateOnDemand, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(path, []byte("state_dir = \"/s\"\n[pools.default]\ndriver = \"loop\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.StateDir != "/s" {
		t.Fatalf("explicit path: %v %+v", err, c)
	}
	t.Setenv(EnvPath, path)
	if c, err := Load(""); err != nil || c.StateDir != "/s" {
		t.Fatalf("env path: %v", err)
	}
	t.Setenv(EnvPath, filepath.Join(dir, "missing.toml"))
	if _, err := Load(""); err == nil {
		t.Fatal("a missing file named by the env must be an error")
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil {
		t.Fatal("a missing file named by the flag must be an error")
	}
	if err := os.WriteFile(path, []byte("[pools.default]\ndriver = \"tape\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error must name the file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(string(DefaultTOML()))
	f.Add("[pools.a]\ndriver = \"block\"\ndevices = [\"/dev/x\"]")
	f.Add("max_volumes = 2\n[pools.default]\ndriver = \"loop\"\ncapacity = \"1Ti\"\nfilesystems = [\"xfs\"]\ndefault_fs = \"xfs\"\nmax_bytes = \"5Gi\"")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s))
		if err != nil {
			return
		}
		if _, err := c.Pool(""); err != nil {
			t.Fatalf("valid config without its default pool: %v", err)
		}
	})
}

func TestParseRBDPool(t *testing.T) {
	c, err := Parse([]byte("node_name = \"node-a\"\n[pools.default]\ndriver = \"rbd\"\nrados_pool = \"volumes\"\ntakeover_after = \"2m\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Pool("")
	want := RBD{CephConf: "/etc/ceph/ceph.conf", ClientID: "admin", RadosPool: "volumes", Map: "auto", Timeout: 10 * time.Second, TakeoverAfter: 2 * time.Minute}
	if c.NodeName != "node-a" || p.RBD == nil || *p.RBD != want {
		t.Fatalf("node %q, rbd %+v; want %+v", c.NodeName, p.RBD, want)
	}
	if c, _ := Parse([]byte("[pools.default]\ndriver = \"loop\"\n")); c.NodeName == "" {
		t.Fatal("node_name does not default to the host name")
	}
}

func TestParseLinger(t *testing.T) {
	const pools = "[pools.default]\ndriver = \"loop\"\n%s\n[pools.shared]\ndriver = \"rbd\"\nrados_pool = \"volumes\"\n%s\n"
	for _, tc := range []struct {
		top, loop, rbd       string
		wantLoop, wantShared time.Duration
	}{
		{"", "", "", 0, 0},
		{`linger = "30s"`, "", "", 30 * time.Second, 0},
		{`linger = "30s"`, `linger = "0s"`, "", 0, 0},
		{"", `linger = "1m"`, `linger = "5s"`, time.Minute, 5 * time.Second},
	} {
		c, err := Parse([]byte(tc.top + "\n" + fmt.Sprintf(pools, tc.loop, tc.rbd)))
		if err != nil {
			t.Fatal(err)
		}
		if l, s := c.Pools["default"].Linger, c.Pools["shared"].Linger; l != tc.wantLoop || s != tc.wantShared {
			t.Errorf("%q %q %q: linger loop %v rbd %v, want %v %v", tc.top, tc.loop, tc.rbd, l, s, tc.wantLoop, tc.wantShared)
		}
	}
	for _, bad := range []string{`linger = "-1s"`, `linger = "soon"`, `linger = "30"`} {
		_, err := Parse([]byte(bad + "\n[pools.default]\ndriver = \"loop\"\n"))
		if err == nil || !strings.Contains(err.Error(), "linger") {
			t.Errorf("%s: got %v, want an error naming linger", bad, err)
		}
		_, err = Parse([]byte("[pools.default]\ndriver = \"loop\"\n" + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), "pools.default: linger") {
			t.Errorf("pool %s: got %v, want an error naming the pool's linger", bad, err)
		}
	}
}
