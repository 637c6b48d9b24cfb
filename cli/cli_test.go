package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/testenv"
	"github.com/mooring-dev/mooring/volume"
)

// scratch writes a config whose state and pool live in a temp dir.
func scratch(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	toml := fmt.Sprintf(`state_dir = %q
run_dir = %q
[pools.default]
driver = "loop"
directory = %q
max_size = "1Gi"
default_size = "64Mi"
tenants = ["*"]
[pools.team]
driver = "loop"
directory = %q
tenants = ["team-a"]
[pools.gone]
driver = "loop"
directory = %q
`, filepath.Join(dir, "state"), filepath.Join(dir, "run"), mkdir(t, dir, "pool"), mkdir(t, dir, "team"), filepath.Join(dir, "missing"))
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mkdir(t *testing.T, parts ...string) string {
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), err
}

func TestVolumeLifecycle(t *testing.T) {
	cfg := scratch(t)
	if _, err := run(t, "--config", cfg, "volume", "create", "pgdata", "--size", "128Mi", "--fs", "xfs"); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "volume", "ls", "--config="+cfg)
	if err != nil || !strings.Contains(out, "pgdata") || !strings.Contains(out, "128Mi") || !strings.Contains(out, "xfs") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, err = run(t, "--json", "--config", cfg, "volume", "inspect", "default/pgdata")
	var v struct {
		Name        string
		Size        int64
		Attachments []any
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Name != "pgdata" || v.Size != 128<<20 || v.Attachments == nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	out, err = run(t, "--config", cfg, "--json", "attachments", "ls")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("attachments --json: %v %q", err, out)
	}
	if _, err := run(t, "--config", cfg, "volume", "rm", "pgdata"); err != nil {
		t.Fatal(err)
	}
	out, _ = run(t, "--config", cfg, "--json", "volume", "ls")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("after rm: %s", out)
	}
}

// TestPoolsLs: pools ls shows provisioned bytes against capacity and what
// the images really use; volume ls shows each volume's size and use.
func TestPoolsLs(t *testing.T) {
	cfg := scratch(t)
	for _, name := range []string{"a", "b"} {
		if _, err := run(t, "--config", cfg, "volume", "create", name, "--size", "128Mi"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, "--config", cfg, "--json", "pools", "ls")
	var pools []struct {
		Pool                              string
		Volumes                           int
		Provisioned, Capacity, Used, Free int64
	}
	if err != nil || json.Unmarshal([]byte(out), &pools) != nil || len(pools) != 3 {
		t.Fatalf("pools ls --json: %v\n%s", err, out)
	}
	p := pools[0]
	if p.Pool != "default" || p.Volumes != 2 || p.Provisioned != 256<<20 || p.Capacity <= p.Provisioned || p.Used >= p.Provisioned || p.Free <= 0 {
		t.Fatalf("default pool: %+v", p)
	}
	out, err = run(t, "--config", cfg, "pools", "ls")
	if err != nil || !strings.Contains(out, "PROVISIONED") || !strings.Contains(out, "256Mi") {
		t.Fatalf("pools ls:\n%s", out)
	}
	out, err = run(t, "--config", cfg, "volume", "ls")
	if err != nil || !strings.Contains(out, "USED") {
		t.Fatalf("volume ls:\n%s", out)
	}
	if _, err := run(t, "--config", cfg, "pools", "rm"); err == nil {
		t.Fatal("pools rm accepted")
	}
}

func TestRefusals(t *testing.T) {
	cfg := scratch(t)
	if _, err := run(t, "--config", cfg, "volume", "create", "dup"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "x", "--pool", "gold"}, `pool "gold": unknown pool`},
		{[]string{"volume", "create", "x", "--size", "2Gi"}, "size over pool maximum: 2Gi asked"},
		{[]string{"volume", "create", "x", "--size", "0"}, "size must be more than zero"},
		{[]string{"volume", "create", "x", "--size", "1GB"}, `size "1GB"`},
		{[]string{"volume", "create", "Bad_Name"}, "Bad_Name"},
		{[]string{"volume", "create", "x", "--fs", "zfs"}, `fs "zfs"`},
		{[]string{"volume", "create", "x", "--pool", "team"}, "tenant not allowed in pool"},
		{[]string{"volume", "create", "x", "--pool", "gone"}, "missing"},
		{[]string{"volume", "create", "dup"}, "volume already exists"},
		{[]string{"volume", "rm", "nothing"}, "volume not found"},
		{[]string{"volume", "inspect", "nothing"}, "volume not found"},
		{[]string{"volume", "frobnicate"}, "unknown volume command"},
		{[]string{"nonsense"}, "unknown command"},
		{[]string{"volume", "create", "x", "--bogus"}, "flag provided but not defined"},
		{[]string{"volume", "create", "x", "--mode", "raw"}, `mode "raw": must be filesystem or block`},
		{[]string{"volume", "create", "x", "--mode", "block", "--fs", "xfs"}, "--fs does not go with --mode block"},
	} {
		_, err := run(t, append([]string{"--config", cfg}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := run(t, "--config", cfg, "volume", "create", "ok", "--pool", "team", "--tenant", "team-a"); err != nil {
		t.Errorf("allowed tenant refused: %v", err)
	}
	if _, err := run(t, "--config", filepath.Join(t.TempDir(), "nope.toml"), "volume", "ls"); err == nil {
		t.Error("a missing --config file was accepted")
	}
}

// TestBlockVolumeCreate: a raw block volume made ahead of its first
// request shows "block" for its filesystem.
func TestBlockVolumeCreate(t *testing.T) {
	cfg := scratch(t)
	out, err := run(t, "--config", cfg, "volume", "create", "raw", "--mode", "block", "--size", "32Mi")
	if err != nil || !strings.Contains(out, "created default/raw (32Mi raw block volume in pool default)") {
		t.Fatalf("create: %v %q", err, out)
	}
	out, err = run(t, "--config", cfg, "volume", "ls")
	if err != nil || !strings.Contains(out, " block ") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
}

func TestRemoveRefusedWhileAttached(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "mkfs.ext4")
	path := scratch(t)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := volume.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	owner := volume.Owner{ID: "c1", Tenant: "default", Frontend: "test"}
	if _, err := m.Acquire(ctx, owner, []volume.Request{{Name: "busy", Target: "/busy"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Release(ctx, owner) })
	_, err = run(t, "--config", path, "volume", "rm", "busy")
	if err == nil || !strings.Contains(err.Error(), "volume is in use by container c1") {
		t.Fatalf("rm of an attached volume: %v", err)
	}
	out, _ := run(t, "--config", path, "attachments", "ls")
	if !strings.Contains(out, "default/busy") || !strings.Contains(out, "c1") {
		t.Fatalf("attachments ls:\n%s", out)
	}
	if err := m.Release(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "--config", path, "volume", "rm", "busy"); err != nil {
		t.Fatalf("rm after release: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := run(t, "--config", scratch(t), "--json", "doctor")
	var checks []check
	if jerr := json.Unmarshal([]byte(out), &checks); jerr != nil {
		t.Fatalf("doctor --json: %v\n%s", jerr, out)
	}
	names := map[string]string{}
	for _, c := range checks {
		names[c.Name] = c.Level
	}
	for _, want := range []string{"loop devices", "mkfs.ext4", "config"} {
		if names[want] != levelOK {
			t.Errorf("check %q: %q (err %v)", want, names[want], err)
		}
	}
}

func TestOlderThan(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"runc version 1.1.5", true}, {"runc version 1.2.7", true}, {"runc version 1.2.8", false},
		{"runc version 1.5.2\ncommit: x", false}, {"runc version 2.0.0", false}, {"garbage", false},
	} {
		if got := olderThan(tc.v, minRunc); got != tc.want {
			t.Errorf("%q: %v", tc.v, got)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	if out, err := run(t, "version"); err != nil || !strings.HasPrefix(out, "mooring ") {
		t.Fatalf("version: %v %q", err, out)
	}
	if out, err := run(t, "help"); err != nil || !strings.Contains(out, "volume create") {
		t.Fatalf("help: %v", err)
	}
}

// TestRunDispatchesNoHooks: `mooring hook` is cmd/mooring's to route;
// the CLI library must never run (and harden) a hook in its caller's
// process.
func TestRunDispatchesNoHooks(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"hook", "createRuntime"}, strings.NewReader(""), &stdout, &stderr)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `unknown command "hook"`) {
		t.Fatalf("err = %v, want the usage error for an unknown command", err)
	}
}

// TestVolumeCleanupByTenant: an NRI tenant is a namespace name, so a
// deleted namespace's volumes stay under its name; the admin lists and
// removes them by tenant.
func TestVolumeCleanupByTenant(t *testing.T) {
	cfg := scratch(t)
	for _, tenant := range []string{"old-ns", "other"} {
		if _, err := run(t, "--config", cfg, "volume", "create", "data", "--tenant", tenant); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, "--config", cfg, "--json", "volume", "ls", "--tenant", "old-ns")
	var vols []struct{ Tenant, Name string }
	if err != nil || json.Unmarshal([]byte(out), &vols) != nil || len(vols) != 1 || vols[0].Tenant != "old-ns" {
		t.Fatalf("ls --tenant old-ns: %v\n%s", err, out)
	}
	if _, err := run(t, "--config", cfg, "volume", "rm", "--tenant", "old-ns", "data"); err != nil {
		t.Fatalf("rm --tenant: %v", err)
	}
	if _, err := run(t, "--config", cfg, "volume", "rm", "data", "--tenant", "old-ns"); err == nil || !strings.Contains(err.Error(), "volume not found") {
		t.Fatalf("second rm: %v", err)
	}
	if _, err := run(t, "--config", cfg, "volume", "rm", "--tenant", "old-ns", "other/data"); err == nil || !strings.Contains(err.Error(), "two tenants") {
		t.Fatalf("conflicting tenants: %v", err)
	}
	out, _ = run(t, "--config", cfg, "--json", "volume", "ls")
	if err := json.Unmarshal([]byte(out), &vols); err != nil || len(vols) != 1 || vols[0].Tenant != "other" {
		t.Fatalf("after rm: %s", out)
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1023: "1023", 1024: "1Ki", 1536: "1.5Ki", 256 << 20: "256Mi", 3<<30 + 1<<29: "3.5Gi"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}
