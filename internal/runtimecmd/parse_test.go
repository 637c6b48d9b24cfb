package runtimecmd

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want Invocation
	}{
		{"docker create", []string{"--root", "/run/docker/runtime-runc/moby", "--log", "/x/log.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "c1"},
			Invocation{Root: "/run/docker/runtime-runc/moby", Log: "/x/log.json", LogFormat: "json", Command: "create", Bundle: "/b", PIDFile: "/b/init.pid", ID: "c1"}},
		{"short bundle", []string{"run", "-b", "/b", "-d", "c2"}, Invocation{LogFormat: "text", Command: "run", Bundle: "/b", ID: "c2"}},
		{"bundle=", []string{"--root=/r", "create", "--bundle=/b", "--console-socket", "/s.sock", "c3"}, Invocation{Root: "/r", LogFormat: "text", Command: "create", Bundle: "/b", ID: "c3"}},
		{"relative bundle, root and pid file", []string{"--root", "r", "create", "-b=rel", "--pid-file", "p", "c4"}, Invocation{Root: "/cwd/r", LogFormat: "text", Command: "create", Bundle: "/cwd/rel", PIDFile: "/cwd/p", ID: "c4"}},
		{"default bundle", []string{"--debug", "run", "--detach", "--no-pivot", "c5"}, Invocation{LogFormat: "text", Command: "run", Bundle: "/cwd", ID: "c5"}},
		{"runc 1.2 pidfd socket", []string{"create", "--pidfd-socket", "/run/pidfd.sock", "--bundle", "/b", "c6"}, Invocation{LogFormat: "text", Command: "create", Bundle: "/b", ID: "c6"}},
		{"crun config", []string{"--cgroup-manager", "cgroupfs", "create", "-f", "/b/other.json", "--bundle", "/b", "c7"}, Invocation{LogFormat: "text", Command: "create", Bundle: "/b", Config: "/b/other.json", ID: "c7"}},
		{"delete force", []string{"--root", "/r", "delete", "--force", "c8"}, Invocation{Root: "/r", LogFormat: "text", Command: "delete", ID: "c8"}},
		{"delete -f after id", []string{"delete", "c9", "-f"}, Invocation{LogFormat: "text", Command: "delete", ID: "c9"}},
		{"state", []string{"state", "c10"}, Invocation{LogFormat: "text", Command: "state", ID: "c10"}},
		{"exec passes", []string{"exec", "--tty", "c11", "sh"}, Invocation{LogFormat: "text", Command: "exec", ID: "c11"}},
		{"version", []string{"--version"}, Invocation{LogFormat: "text"}},
		{"create help", []string{"create", "--help"}, Invocation{LogFormat: "text", Command: "create", Bundle: "/cwd"}},
		{"criu and rootless values", []string{"--criu", "/usr/sbin/criu", "--rootless", "false", "kill", "c12", "KILL"}, Invocation{LogFormat: "text", Command: "kill", ID: "c12"}},
		{"double dash", []string{"create", "--bundle", "/b", "--", "c13"}, Invocation{LogFormat: "text", Command: "create", Bundle: "/b", ID: "c13"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.args, "/cwd")
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--bundle"}, "needs a value"},
		{[]string{"--root"}, "needs a value"},
		{[]string{"create", "--future-option", "x", "c1"}, "unknown option --future-option"},
		{[]string{"create", "--future=1", "c1"}, "unknown option --future=1"},
		{[]string{"--future-global", "create", "c1"}, "unknown option --future-global"},
		{[]string{"create", "--bundle", "/b"}, "exactly one container id, got 0"},
		{[]string{"run", "c1", "c2"}, "exactly one container id, got 2"},
		{[]string{"delete", "c1", "--", "c2"}, "exactly one container id, got 2"},
		{[]string{"delete"}, "exactly one container id, got 0"},
	} {
		_, err := Parse(tc.args, "/")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestStateRoot(t *testing.T) {
	for _, tc := range []struct{ root, runtime, want string }{
		{"/r", "/usr/bin/runc", "/r"},
		{"", "/usr/local/bin/runc", "/run/runc"},
		{"", "/usr/bin/crun", "/run/crun"},
	} {
		if got := StateRoot(tc.root, tc.runtime); got != tc.want {
			t.Errorf("StateRoot(%q, %q) = %q, want %q", tc.root, tc.runtime, got, tc.want)
		}
	}
}
