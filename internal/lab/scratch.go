package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/devices"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// Scratch is one test's mooring instance: config, state, staging and pool
// in a temporary directory.
type Scratch struct {
	Dir        string
	ConfigPath string
	StateDir   string
	RunDir     string
	PoolDir    string
	LogFile    string
	tb         testing.TB
	extra      string
	runtimes   []string
	hostMounts []string
}

// NewScratch writes a config with a loop pool "default" (64Mi default,
// 1Gi max, ext4, created on demand) and registers a cleanup that fails the
// test if a loop device tagged with one of its volumes, or a mount under
// its directory, is left (and then removes them), or if the host's mount
// table outside the temp dir (where every test keeps its scratch mounts)
// changed.
func NewScratch(tb testing.TB) *Scratch {
	tb.Helper()
	testenv.RequireRoot(tb)
	dir := tb.TempDir()
	s := &Scratch{
		Dir: dir, ConfigPath: filepath.Join(dir, "config.toml"),
		StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"),
		PoolDir: filepath.Join(dir, "pool"), LogFile: filepath.Join(dir, "mooring.log"), tb: tb,
	}
	if err := os.MkdirAll(s.PoolDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	s.WriteConfig("")
	s.hostMounts = MountsOutside(os.TempDir())
	tb.Cleanup(s.checkClean)
	return s
}

// SetRuntimes replaces the real runtimes the shim may exec (default: the
// current runc) and rewrites the config.
func (s *Scratch) SetRuntimes(paths ...string) {
	s.tb.Helper()
	s.runtimes = paths
	s.WriteConfig(s.extra)
}

// WriteConfig rewrites the config with extra TOML appended (more pools,
// allow_env_requests must come through Globals).
func (s *Scratch) WriteConfig(extra string) {
	s.tb.Helper()
	s.extra = extra
	runtimes := s.runtimes
	if len(runtimes) == 0 {
		runtimes = []string{filepath.Join(testenv.ToolsDir(), "runc")}
	}
	toml := fmt.Sprintf(`state_dir = %q
run_dir = %q
log_file = %q
runtimes = %s
%s
[pools.default]
driver = "loop"
directory = %q
default_size = "64Mi"
max_size = "1Gi"
default_fs = "ext4"
create_on_demand = true
%s`, s.StateDir, s.RunDir, s.LogFile, tomlStrings(runtimes), globals(extra), s.PoolDir, pools(extra))
	if err := os.WriteFile(s.ConfigPath, []byte(toml), 0o600); err != nil {
		s.tb.Fatal(err)
	}
}

// globals and pools split extra TOML into top-level lines (before the
// first table) and tables.
func globals(extra string) string {
	g, _, _ := strings.Cut(extra, "[")
	return g
}

func pools(extra string) string {
	if i := strings.Index(extra, "["); i >= 0 {
		return extra[i:]
	}
	return ""
}

// Env is the environment that points mooring at this scratch config.
func (s *Scratch) Env() []string { return []string{"MOORING_CONFIG=" + s.ConfigPath} }

// Log returns the hook/shim log, for failure messages.
func (s *Scratch) Log() string {
	b, _ := os.ReadFile(s.LogFile)
	return string(b)
}

// VolumeIDs returns the ids of the volumes in this scratch journal.
func (s *Scratch) VolumeIDs() []string {
	var ids []string
	filepath.WalkDir(filepath.Join(s.StateDir, "volumes"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		var rec struct{ ID string }
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &rec) == nil {
			ids = append(ids, rec.ID)
		}
		return nil
	})
	return ids
}

// Attachments returns the number of attachment records in the journal.
func (s *Scratch) Attachments() int {
	n := 0
	filepath.WalkDir(filepath.Join(s.StateDir, "attachments"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			n++
		}
		return nil
	})
	return n
}

// Leftovers lists loop devices tagged with this scratch's volumes and
// mounts under its directory.
func (s *Scratch) Leftovers() (loops, mounts []string) {
	for _, id := range s.VolumeIDs() {
		loops = append(loops, LoopsTagged("mooring:"+id)...)
	}
	return loops, MountsUnder(s.Dir)
}

func (s *Scratch) checkClean() {
	loops, mounts := s.Leftovers()
	if len(loops) > 0 || len(mounts) > 0 {
		s.tb.Errorf("left behind: loop devices %v, mounts %v\nlog:\n%s", loops, mounts, s.Log())
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", mounts[i]).Run()
	}
	for _, l := range loops {
		exec.Command("losetup", "-d", l).Run()
	}
	if after := MountsOutside(os.TempDir()); !slices.Equal(s.hostMounts, after) {
		s.tb.Errorf("the host mount table changed:\nbefore %v\nafter  %v", s.hostMounts, after)
	}
	if n := s.Attachments(); n > 0 && !s.tb.Failed() {
		s.tb.Errorf("%d attachment record(s) left in the journal", n)
	}
}

// LoopsTagged lists loop devices whose tag (lo_file_name) starts with
// prefix.
func LoopsTagged(prefix string) []string {
	infos, _ := devices.NewLoops().List(context.Background(), prefix)
	var out []string
	for _, l := range infos {
		out = append(out, l.Path)
	}
	return out
}

// MountsUnder lists mount points at or below dir, outermost first.
func MountsUnder(dir string) []string {
	var out []string
	for _, m := range mountPoints() {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// MountsOutside lists the host's mount points not below any of dirs: the
// part of the mount table a test may compare before and after.
func MountsOutside(dirs ...string) []string {
	var out []string
next:
	for _, m := range mountPoints() {
		for _, d := range dirs {
			if m == d || strings.HasPrefix(m, d+"/") {
				continue next
			}
		}
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescape(fields[4]))
		}
	}
	return out
}

func unescape(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}
