package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// defaultHooksDir is where podman and CRI-O read hooks.d files when their
// config names no hooks_dir, and where `make install` puts mooring's.
const defaultHooksDir = "/usr/share/containers/oci/hooks.d"

// engineChecks are doctor's checks of how each engine found on the host
// reaches mooring. A container that asks for a volume through an engine
// that never calls mooring starts without it and without an error, so
// these checks are what makes that visible. FAIL where that silence is
// the default path (hooks.d for podman and CRI-O); WARN where mooring is
// one option among others (NRI, docker's runtime).
func (e *env) engineChecks() []check {
	var out []check
	if path, err := exec.LookPath("podman"); err == nil {
		out = append(out, e.podmanHooks(path))
	}
	if path, err := exec.LookPath("crio"); err == nil {
		out = append(out, e.crioHooks(path))
	}
	if path, err := exec.LookPath("containerd"); err == nil {
		out = append(out, e.containerdNRI(path))
	}
	if path, err := exec.LookPath("docker"); err == nil {
		out = append(out, e.dockerRuntime(path))
	}
	return out
}

// output runs a program with a time limit and returns its stdout.
func output(ctx context.Context, path string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
	}
	return out, nil
}

// podmanHooks checks podman's effective hooks_dir (containers.conf and
// its drop-ins merged by podman itself, which prints it as the default of
// --hooks-dir; `podman info` does not show it).
func (e *env) podmanHooks(podman string) check {
	const name = "podman hooks"
	help, err := output(e.ctx, podman, "--help")
	if err != nil {
		return check{name, levelWarn, err.Error()}
	}
	dirs, err := podmanHooksDirs(string(help))
	if err != nil {
		return check{name, levelWarn, err.Error() + ": check hooks_dir in containers.conf by hand"}
	}
	return hooksCheck("podman", dirs, readHooks(dirs), executable, "hooks_dir in containers.conf ([engine])")
}

var podmanHooksFlag = regexp.MustCompile(`--hooks-dir\s.*\(default \[([^\]]*)\]\)`)

// podmanHooksDirs reads the effective hooks directories from the default
// that `podman --help` prints for --hooks-dir.
func podmanHooksDirs(help string) ([]string, error) {
	m := podmanHooksFlag.FindStringSubmatch(help)
	if m == nil {
		if strings.Contains(help, "--hooks-dir") {
			return nil, nil // no default: podman reads no hooks dir
		}
		return nil, errors.New("podman --help shows no --hooks-dir")
	}
	return strings.FieldsFunc(m[1], func(r rune) bool { return r == ',' }), nil
}

// crioHooks checks CRI-O's hooks_dir: `crio config` (the merged config)
// when it answers, else crio.conf and its drop-ins read here.
func (e *env) crioHooks(crio string) check {
	var confs [][]byte
	if out, err := output(e.ctx, crio, "config"); err == nil {
		confs = [][]byte{out}
	} else {
		files, _ := filepath.Glob("/etc/crio/crio.conf.d/*.conf")
		sort.Strings(files)
		for _, f := range append([]string{"/etc/crio/crio.conf"}, files...) {
			if b, err := os.ReadFile(f); err == nil {
				confs = append(confs, b)
			}
		}
	}
	dirs, err := crioHooksDirs(confs...)
	if err != nil {
		return check{"cri-o hooks", levelWarn, err.Error()}
	}
	return hooksCheck("CRI-O", dirs, readHooks(dirs), executable, "hooks_dir in crio.conf ([crio.runtime]), or use the NRI plugin")
}

// crioHooksDirs returns the hooks_dir of [crio.runtime] from CRI-O config
// files in the order CRI-O reads them (later ones win); CRI-O's default
// when none sets it.
func crioHooksDirs(confs ...[]byte) ([]string, error) {
	dirs := []string{defaultHooksDir}
	for _, c := range confs {
		var v struct {
			Crio struct {
				Runtime struct {
					HooksDir *[]string `toml:"hooks_dir"`
				} `toml:"runtime"`
			} `toml:"crio"`
		}
		if _, err := toml.Decode(string(c), &v); err != nil {
			return nil, fmt.Errorf("CRI-O config: %w", err)
		}
		if v.Crio.Runtime.HooksDir != nil {
			dirs = *v.Crio.Runtime.HooksDir
		}
	}
	return dirs, nil
}

// hookFile is the part of a hooks.d file (schema 1.0.0) doctor reads.
type hookFile struct {
	Hook struct {
		Path string   `json:"path"`
		Args []string `json:"args"`
	} `json:"hook"`
	Stages []string `json:"stages"`
}

// readHooks reads the *.json files of dirs, keyed by path; a later
// directory's file replaces an earlier one of the same name, as in podman
// and CRI-O.
func readHooks(dirs []string) map[string][]byte {
	byName := map[string]string{}
	for _, d := range dirs {
		paths, _ := filepath.Glob(filepath.Join(d, "*.json"))
		for _, p := range paths {
			byName[filepath.Base(p)] = p
		}
	}
	files := map[string][]byte{}
	for _, p := range byName {
		if b, err := os.ReadFile(p); err == nil {
			files[p] = b
		}
	}
	return files
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// hooksCheck reports whether the hooks.d files an engine reads run mooring
// at createRuntime (or prestart) and poststop, with a binary that exists.
// files maps each file's path to its content; where names the setting to
// change.
func hooksCheck(engine string, dirs []string, files map[string][]byte, exists func(string) bool, where string) check {
	name := strings.ToLower(engine) + " hooks"
	stage := func(s string) string {
		if s == "prestart" { // the older name of the same stage
			return "createRuntime"
		}
		return s
	}
	found := map[string]string{} // stage -> file
	for _, p := range slices.Sorted(maps.Keys(files)) {
		var h hookFile
		if json.Unmarshal(files[p], &h) != nil || len(h.Hook.Args) < 3 || h.Hook.Args[1] != "hook" {
			continue
		}
		want := stage(h.Hook.Args[2])
		if !slices.ContainsFunc(h.Stages, func(s string) bool { return stage(s) == want }) {
			continue
		}
		if !exists(h.Hook.Path) {
			return check{name, levelFail, fmt.Sprintf("%s runs %s, which is not an executable: %s starts annotated containers without their volumes; reinstall with `make install PREFIX=...` matching where mooring is", p, h.Hook.Path, engine)}
		}
		found[want] = p
	}
	switch {
	case found["createRuntime"] == "":
		return check{name, levelFail, fmt.Sprintf("%s reads hooks from %s and none runs `mooring hook createRuntime`: annotated containers start without their volumes and without an error; run `make install` (hooks go to %s) or add the directory holding mooring's hooks.d files to %s",
			engine, strings.Join(dirs, ", "), defaultHooksDir, where)}
	case found["poststop"] == "":
		return check{name, levelFail, fmt.Sprintf("%s runs %s but no `mooring hook poststop` from %s: volumes stay attached after containers stop until `mooring gc`; install mooring-poststop.json there",
			engine, found["createRuntime"], strings.Join(dirs, ", "))}
	}
	return check{name, levelOK, fmt.Sprintf("%s and %s", found["createRuntime"], found["poststop"])}
}

// minContainerdNRI is the first containerd with NRI.
var minContainerdNRI = [3]int{1, 7, 0}

// containerdNRI checks that this containerd can run mooring-nri and that
// a missing plugin refuses pods instead of starting them without volumes.
func (e *env) containerdNRI(containerd string) check {
	v, err := toolVersion(e.ctx, containerd, "--version")
	if err != nil {
		return check{"containerd nri", levelWarn, err.Error()}
	}
	if olderThan(v, minContainerdNRI) {
		return containerdNRICheck(v, nil)
	}
	dump, err := output(e.ctx, containerd, "config", "dump")
	if err != nil {
		return check{"containerd nri", levelWarn, err.Error()}
	}
	return containerdNRICheck(v, dump)
}

// containerdNRICheck judges containerd's version and `containerd config
// dump` output (TOML, config version 2 or 3).
func containerdNRICheck(version string, dump []byte) check {
	const name = "containerd nri"
	if olderThan(version, minContainerdNRI) {
		return check{name, levelWarn, fmt.Sprintf("containerd %s has no NRI (1.7 or later; Debian 12 ships 1.6): it cannot run mooring-nri and pod annotations are ignored; on Kubernetes use a newer containerd, else mooring-runtime as runc's BinaryName (docs/shim.md)", versionPattern.FindString(version))}
	}
	var v struct {
		Plugins map[string]struct {
			Disable          *bool `toml:"disable"`
			DefaultValidator *struct {
				Enable          bool     `toml:"enable"`
				RequiredPlugins []string `toml:"required_plugins"`
			} `toml:"default_validator"`
		} `toml:"plugins"`
	}
	if _, err := toml.Decode(string(dump), &v); err != nil {
		return check{name, levelWarn, fmt.Sprintf("containerd config dump: %v", err)}
	}
	nri, ok := v.Plugins["io.containerd.nri.v1.nri"]
	if !ok || nri.Disable == nil || *nri.Disable {
		return check{name, levelWarn, "NRI is disabled: pods' volume annotations are ignored; enable it in /etc/containerd/config.toml (deploy/containerd/nri.toml) if Kubernetes runs here"}
	}
	if dv := nri.DefaultValidator; dv == nil || !dv.Enable || !slices.Contains(dv.RequiredPlugins, "mooring") {
		return check{name, levelWarn, "NRI is on but mooring is not a required plugin: while mooring-nri is not running, pods start without their volumes; set default_validator enable = true and required_plugins = ['mooring'] (deploy/containerd/nri.toml; containerd 2.x)"}
	}
	return check{name, levelOK, "NRI on, mooring a required plugin"}
}

// dockerRuntime checks that docker knows the runtime "mooring": from the
// running daemon, else from /etc/docker/daemon.json.
func (e *env) dockerRuntime(docker string) check {
	if out, err := output(e.ctx, docker, "info", "--format", "{{json .Runtimes}}"); err == nil {
		return dockerRuntimeCheck(out, "docker info", executable)
	}
	raw, err := os.ReadFile("/etc/docker/daemon.json")
	if err != nil {
		return check{"docker runtime", levelWarn, "dockerd does not answer and /etc/docker/daemon.json is unreadable: register mooring-runtime as the runtime \"mooring\" (deploy/docker/daemon.json)"}
	}
	var daemon struct {
		Runtimes json.RawMessage `json:"runtimes"`
	}
	if err := json.Unmarshal(raw, &daemon); err != nil {
		return check{"docker runtime", levelWarn, fmt.Sprintf("/etc/docker/daemon.json: %v", err)}
	}
	return dockerRuntimeCheck(daemon.Runtimes, "/etc/docker/daemon.json", executable)
}

// dockerRuntimeCheck judges docker's runtimes table (JSON: name to
// {"path": ...}) as `docker info` or daemon.json give it.
func dockerRuntimeCheck(runtimes []byte, source string, exists func(string) bool) check {
	const name = "docker runtime"
	var rt map[string]struct {
		Path string `json:"path"`
	}
	if len(runtimes) > 0 {
		if err := json.Unmarshal(runtimes, &rt); err != nil {
			return check{name, levelWarn, fmt.Sprintf("%s runtimes: %v", source, err)}
		}
	}
	m, ok := rt["mooring"]
	switch {
	case !ok:
		return check{name, levelWarn, fmt.Sprintf("%s lists no runtime \"mooring\": `docker run --runtime mooring` fails; add it (deploy/docker/daemon.json) and restart dockerd", source)}
	case !exists(m.Path):
		return check{name, levelWarn, fmt.Sprintf("the runtime \"mooring\" in %s is %s, which is not an executable; point it at the installed mooring-runtime", source, m.Path)}
	}
	return check{name, levelOK, "runtime \"mooring\" is " + m.Path + " (" + source + ")"}
}
