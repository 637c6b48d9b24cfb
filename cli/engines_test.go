package cli

import (
	"strings"
	"testing"
)

func TestPodmanHooksDirs(t *testing.T) {
	for _, tc := range []struct {
		help string
		want []string
		err  bool
	}{
		{"      --hooks-dir strings           Set the OCI hooks directory path (may be set multiple times) (default [/usr/share/containers/oci/hooks.d])\n", []string{"/usr/share/containers/oci/hooks.d"}, false},
		{"      --hooks-dir strings           Set the OCI hooks directory path (may be set multiple times) (default [/x/y,/z])\n", []string{"/x/y", "/z"}, false},
		{"      --hooks-dir strings           Set the OCI hooks directory path (may be set multiple times)\n", nil, false},
		{"Usage: podman\n", nil, true},
	} {
		got, err := podmanHooksDirs(tc.help)
		if (err != nil) != tc.err || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("podmanHooksDirs(%q) = %v, %v; want %v (error %v)", tc.help, got, err, tc.want, tc.err)
		}
	}
}

func TestCrioHooksDirs(t *testing.T) {
	base := "[crio.runtime]\ndefault_runtime = \"runc\"\n"
	for _, tc := range []struct {
		name  string
		confs []string
		want  string
	}{
		{"no config: CRI-O's default", nil, defaultHooksDir},
		{"crio.conf without hooks_dir", []string{base}, defaultHooksDir},
		{"crio config output", []string{"[crio]\n[crio.runtime]\nhooks_dir = [\n  \"/etc/hooks\",\n  \"/usr/share/hooks\",\n]\n"}, "/etc/hooks|/usr/share/hooks"},
		{"a drop-in replaces crio.conf's", []string{"[crio.runtime]\nhooks_dir = [\"/a\"]\n", base, "[crio.runtime]\nhooks_dir = [\"/b\"]\n"}, "/b"},
		{"empty list: no hooks", []string{"[crio.runtime]\nhooks_dir = []\n"}, ""},
	} {
		var confs [][]byte
		for _, c := range tc.confs {
			confs = append(confs, []byte(c))
		}
		got, err := crioHooksDirs(confs...)
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("%s: %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := crioHooksDirs([]byte("[crio.runtime\n")); err == nil {
		t.Error("broken TOML: no error")
	}
}

func TestHooksCheck(t *testing.T) {
	create := `{"version":"1.0.0","hook":{"path":"/usr/bin/mooring","args":["mooring","hook","createRuntime"]},"stages":["createRuntime"]}`
	prestart := `{"version":"1.0.0","hook":{"path":"/usr/bin/mooring","args":["mooring","hook","prestart"]},"stages":["prestart"]}`
	stop := `{"version":"1.0.0","hook":{"path":"/usr/bin/mooring","args":["mooring","hook","poststop"]},"stages":["poststop"]}`
	elsewhere := `{"version":"1.0.0","hook":{"path":"/usr/local/bin/mooring","args":["mooring","hook","createRuntime"]},"stages":["createRuntime"]}`
	wrongStage := `{"version":"1.0.0","hook":{"path":"/usr/bin/mooring","args":["mooring","hook","createRuntime"]},"stages":["poststop"]}`
	other := `{"version":"1.0.0","hook":{"path":"/usr/bin/nvidia-hook","args":["nvidia-hook","prestart"]},"stages":["prestart"]}`
	exists := func(p string) bool { return p == "/usr/bin/mooring" }
	for _, tc := range []struct {
		name  string
		files map[string]string
		level string
		says  string
	}{
		{"installed", map[string]string{"/d/a.json": create, "/d/b.json": stop}, levelOK, "/d/a.json and /d/b.json"},
		{"prestart alias", map[string]string{"/d/a.json": prestart, "/d/b.json": stop}, levelOK, "/d/a.json"},
		{"empty dir", nil, levelFail, "none runs `mooring hook createRuntime`"},
		{"only other hooks and junk", map[string]string{"/d/n.json": other, "/d/x.json": "{"}, levelFail, "start without their volumes"},
		{"binary not there (PREFIX mismatch)", map[string]string{"/d/a.json": elsewhere, "/d/b.json": stop}, levelFail, "/usr/local/bin/mooring, which is not an executable"},
		{"stage and args disagree", map[string]string{"/d/a.json": wrongStage, "/d/b.json": stop}, levelFail, "none runs"},
		{"no poststop", map[string]string{"/d/a.json": create}, levelFail, "stay attached"},
	} {
		files := map[string][]byte{}
		for k, v := range tc.files {
			files[k] = []byte(v)
		}
		c := hooksCheck("podman", []string{"/d"}, files, exists, "hooks_dir")
		if c.Level != tc.level || !strings.Contains(c.Detail, tc.says) {
			t.Errorf("%s: %s %s; want %s containing %q", tc.name, c.Level, c.Detail, tc.level, tc.says)
		}
	}
}

func TestContainerdNRICheck(t *testing.T) {
	required := `version = 3
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  [plugins.'io.containerd.nri.v1.nri'.default_validator]
    enable = true
    required_plugins = ['mooring']
`
	for _, tc := range []struct {
		name, version, dump, level, says string
	}{
		{"Debian 12", "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", "", levelWarn, "containerd 1.6.20 has no NRI"},
		{"1.7 default: NRI off", "containerd github.com/containerd/containerd v1.7.27 abc", "version = 2\n[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n", levelWarn, "NRI is disabled"},
		{"no NRI table", "containerd v2.4.2", "version = 3\n", levelWarn, "NRI is disabled"},
		{"2.x default: on, nothing required", "containerd v2.4.2", "version = 3\n[plugins.'io.containerd.nri.v1.nri']\n  disable = false\n  [plugins.'io.containerd.nri.v1.nri'.default_validator]\n    enable = false\n    required_plugins = []\n", levelWarn, "not a required plugin"},
		{"validator off", "containerd v2.4.2", strings.Replace(required, "enable = true", "enable = false", 1), levelWarn, "not a required plugin"},
		{"required", "containerd v2.4.2", required, levelOK, "required plugin"},
		{"broken dump", "containerd v2.4.2", "[plugins", levelWarn, "config dump"},
	} {
		c := containerdNRICheck(tc.version, []byte(tc.dump))
		if c.Level != tc.level || !strings.Contains(c.Detail, tc.says) {
			t.Errorf("%s: %s %s; want %s containing %q", tc.name, c.Level, c.Detail, tc.level, tc.says)
		}
	}
}

func TestDockerRuntimeCheck(t *testing.T) {
	exists := func(p string) bool { return p == "/usr/local/bin/mooring-runtime" }
	for _, tc := range []struct {
		name, runtimes, level, says string
	}{
		{"docker info", `{"io.containerd.runc.v2":{"path":"runc"},"mooring":{"path":"/usr/local/bin/mooring-runtime"},"runc":{"path":"runc"}}`, levelOK, "/usr/local/bin/mooring-runtime"},
		{"not registered", `{"runc":{"path":"runc"}}`, levelWarn, "no runtime \"mooring\""},
		{"daemon.json without runtimes", ``, levelWarn, "no runtime \"mooring\""},
		{"stale path", `{"mooring":{"path":"/opt/old/mooring-runtime"}}`, levelWarn, "not an executable"},
		{"garbage", `[1]`, levelWarn, "runtimes"},
	} {
		c := dockerRuntimeCheck([]byte(tc.runtimes), "docker info", exists)
		if c.Level != tc.level || !strings.Contains(c.Detail, tc.says) {
			t.Errorf("%s: %s %s; want %s containing %q", tc.name, c.Level, c.Detail, tc.level, tc.says)
		}
	}
}
