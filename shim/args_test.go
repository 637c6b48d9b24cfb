package shim

import "testing"

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want Invocation
	}{
		{"docker create", []string{"--root", "/run/docker/runtime-runc/moby", "--log", "/x/log.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "c1"},
			Invocation{Root: "/run/docker/runtime-runc/moby", Log: "/x/log.json", LogFormat: "json", Command: "create", Bundle: "/b", ID: "c1"}},
		{"short bundle", []string{"run", "-b", "/b", "-d", "c2"}, Invocation{LogFormat: "text", Command: "run", Bundle: "/b", ID: "c2"}},
		{"bundle=", []string{"--root=/r", "create", "--bundle=/b", "--console-socket", "/s.sock", "c3"}, Invocation{Root: "/r", LogFormat: "text", Command: "create", Bundle: "/b", ID: "c3"}},
		{"b=", []string{"create", "-b=rel", "c4"}, Invocation{LogFormat: "text", Command: "create", Bundle: "/cwd/rel", ID: "c4"}},
		{"default bundle", []string{"--debug", "run", "--detach", "--no-pivot", "c5"}, Invocation{LogFormat: "text", Command: "run", Bundle: "/cwd", ID: "c5"}},
		{"delete force", []string{"--root", "/r", "delete", "--force", "c6"}, Invocation{Root: "/r", LogFormat: "text", Command: "delete", ID: "c6"}},
		{"delete -f after id", []string{"delete", "c7", "-f"}, Invocation{LogFormat: "text", Command: "delete", ID: "c7"}},
		{"state", []string{"state", "c8"}, Invocation{LogFormat: "text", Command: "state", ID: "c8"}},
		{"exec passes", []string{"exec", "--tty", "c9", "sh"}, Invocation{LogFormat: "text", Command: "exec", ID: "c9"}},
		{"version", []string{"--version"}, Invocation{LogFormat: "text"}},
		{"criu and rootless values", []string{"--criu", "/usr/sbin/criu", "--rootless", "false", "kill", "c10", "KILL"}, Invocation{LogFormat: "text", Command: "kill", ID: "c10"}},
		{"double dash", []string{"create", "--bundle", "/b", "--", "c11"}, Invocation{LogFormat: "text", Command: "create", Bundle: "/b", ID: "c11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseArgs(tc.args, "/cwd")
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := ParseArgs([]string{"create", "--bundle"}, "/"); err == nil {
		t.Fatal("--bundle without a value accepted")
	}
	if _, err := ParseArgs([]string{"--root"}, "/"); err == nil {
		t.Fatal("--root without a value accepted")
	}
}
