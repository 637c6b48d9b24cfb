package integration

import (
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
)

// TestHookCrun runs the same bundles under crun (through the hybrid-cgroup
// workaround): crun runs createRuntime hooks like runc but no poststop
// after a failed create, so the hook's own undo is what cleans up.
func TestHookCrun(t *testing.T) {
	bins, rootfs, s := lab.Binaries(t), lab.Rootfs(t), lab.NewScratch(t)
	crun := lab.NewRuntime(t, lab.Crun(t))
	runc := lab.Runc(t) // only for `runc spec`
	bundle := func(req, script string) *lab.Bundle {
		b := lab.NewBundle(t, runc, rootfs, "sh", "-c", script)
		b.Spec.Version = "1.0.2" // crun 1.8 refuses newer spec versions
		return b.Annotate(annotations.Key, req).AddHooks(bins.Mooring, s)
	}
	req := `[{name: c, target: /data}]`
	if _, stderr, err := crun.Run(bundle(req, "echo crun > /data/f"), "crun-w"); err != nil {
		t.Fatalf("crun run: %v\n%s\nlog: %s", err, stderr, s.Log())
	}
	out, stderr, err := crun.Run(bundle(req, "cat /data/f"), "crun-r")
	if err != nil || strings.TrimSpace(out) != "crun" {
		t.Fatalf("crun read back %q: %v\n%s", out, err, stderr)
	}
	// A failing hook leaves nothing although crun runs no poststop. crun
	// 1.8 does not show a hook's stderr; mooring's log has the reason.
	if _, stderr, err := crun.Run(bundle(`[{name: other, target: /data, pool: nope}]`, "true"), "crun-bad"); err == nil || !strings.Contains(s.Log(), `pool \"nope\": unknown pool`) {
		t.Fatalf("bad request under crun: %v %s\nlog: %s", err, stderr, s.Log())
	}
}
