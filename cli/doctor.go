package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/volume"
)

// Check levels.
const (
	levelOK   = "OK"
	levelWarn = "WARN"
	levelFail = "FAIL"
)

// check is one line of `mooring doctor`.
type check struct {
	Name   string `json:"name"`
	Level  string `json:"level"`
	Detail string `json:"detail"`
}

// minRunc is the oldest runc without known container-escape CVEs
// (CVE-2025-31133, -52565, -52881 were fixed in 1.2.8).
var minRunc = [3]int{1, 2, 8}

// fsTools are the programs the core runs, with the flag that prints their
// version.
var fsTools = [][2]string{
	{"blkid", "--version"}, {"mkfs.ext4", "-V"}, {"e2fsck", "-V"},
	{"mkfs.xfs", "-V"}, {"xfs_repair", "-V"}, {"mkfs.btrfs", "--version"}, {"btrfs", "--version"},
}

func (e *env) doctor() error {
	var checks []check
	add := func(name, level, detail string) { checks = append(checks, check{name, level, detail}) }

	if err := loopControl(); err != nil {
		add("loop devices", levelFail, err.Error())
	} else {
		add("loop devices", levelOK, "/dev/loop-control answers LOOP_CTL_GET_FREE")
	}
	for _, t := range fsTools {
		if v, err := toolVersion(e.ctx, t[0], t[1]); err != nil {
			add(t[0], levelFail, err.Error())
		} else {
			add(t[0], levelOK, v)
		}
	}
	cfg, err := e.config()
	if err != nil {
		add("config", levelFail, err.Error())
	} else {
		add("config", levelOK, fmt.Sprintf("%d pool(s), state in %s", len(cfg.Pools), cfg.StateDir))
		checks = append(checks, directories(cfg)...)
		checks = append(checks, e.poolChecks(cfg)...)
	}
	runtimes := []string{"runc", "crun", "podman", "containerd", "dockerd"}
	if cfg != nil {
		runtimes = append(cfg.Runtimes, runtimes...)
	}
	seen := map[string]bool{}
	for _, r := range runtimes {
		path, err := exec.LookPath(r)
		if err != nil || seen[path] {
			continue
		}
		seen[path] = true
		v, err := toolVersion(e.ctx, path, "--version")
		switch {
		case err != nil:
			add(r, levelWarn, err.Error())
		case filepath.Base(path) == "runc" && olderThan(v, minRunc):
			add(r, levelWarn, fmt.Sprintf("%s at %s is older than 1.2.8 (known container escapes); install a current runc", v, path))
		default:
			add(r, levelOK, v+" at "+path)
		}
	}
	checks = append(checks, e.engineChecks()...)
	failed := 0
	for _, c := range checks {
		if c.Level == levelFail {
			failed++
		}
	}
	if err := e.print(checks, func(w io.Writer) {
		for _, c := range checks {
			fmt.Fprintf(w, "%-4s  %-14s %s\n", c.Level, c.Name, c.Detail)
		}
	}); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	return nil
}

func loopControl() error {
	f, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("no loop support: %w", err)
	}
	defer f.Close()
	if _, err := unix.IoctlRetInt(int(f.Fd()), unix.LOOP_CTL_GET_FREE); err != nil {
		return fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	return nil
}

// directories checks that the state dir and every loop pool's directory
// exist (or can be created) and are writable.
func directories(cfg *config.Config) []check {
	dirs := []string{cfg.StateDir}
	for name, p := range cfg.Pools {
		if p.Driver == config.DriverLoop {
			dirs = append(dirs, cfg.PoolDirectory(name))
		}
	}
	var out []check
	for _, d := range dirs {
		existing := d
		for {
			if _, err := os.Stat(existing); err == nil || existing == "/" {
				break
			}
			existing = filepath.Dir(existing)
		}
		if err := unix.Access(existing, unix.W_OK); err != nil {
			out = append(out, check{d, levelFail, fmt.Sprintf("%s is not writable: %v", existing, err)})
		} else if existing != d {
			out = append(out, check{d, levelOK, "will be created on first use"})
		} else {
			out = append(out, check{d, levelOK, "writable"})
		}
	}
	return out
}

func toolVersion(ctx context.Context, name, flag string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, flag).CombinedOutput()
	first := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	if err != nil && first == "" {
		return "", fmt.Errorf("%s %s: %w", name, flag, err)
	}
	return first, nil
}

var versionPattern = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)`)

// olderThan reports whether the first x.y.z in s is older than min.
func olderThan(s string, min [3]int) bool {
	m := versionPattern.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	for i := range 3 {
		n, _ := strconv.Atoi(m[i+1])
		if n != min[i] {
			return n < min[i]
		}
	}
	return false
}

// poolChecks asks each pool's driver whether this node can use it (rbd:
// the cluster answers, a data path is installed): a request for a volume
// there would otherwise fail only when a container starts.
func (e *env) poolChecks(cfg *config.Config) []check {
	m, err := volume.New(cfg)
	if err != nil {
		return []check{{"pools", levelFail, err.Error()}}
	}
	var out []check
	for _, name := range slices.Sorted(maps.Keys(cfg.Pools)) {
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		detail, ok, err := m.CheckPool(ctx, name)
		cancel()
		switch {
		case err != nil:
			out = append(out, check{"pool " + name, levelFail, err.Error()})
		case ok:
			out = append(out, check{"pool " + name, levelOK, detail})
		}
	}
	return out
}
