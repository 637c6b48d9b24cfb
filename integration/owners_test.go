package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/volume"
)

// claims reads the scratch journal's claims.
func claims(t *testing.T, s *lab.Scratch) []volume.Attachment {
	t.Helper()
	var out []volume.Attachment
	filepath.WalkDir(filepath.Join(s.StateDir, "attachments"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		var a volume.Attachment
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &a) == nil {
			out = append(out, a)
		}
		return nil
	})
	return out
}

// TestSameIDInTwoRuntimeRoots runs two containers with the same id in two
// runc roots sharing one volume, through the shim and through the hooks:
// deleting one keeps the other's claim and mount.
func TestSameIDInTwoRuntimeRoots(t *testing.T) {
	for _, via := range []string{"shim", "hook"} {
		t.Run(via, func(t *testing.T) {
			bins, rootfs, runc, s := lab.Binaries(t), lab.Rootfs(t), lab.Runc(t), lab.NewScratch(t)
			path := runc
			if via == "shim" {
				path = bins.Runtime
			}
			a, b := lab.NewRuntime(t, path, s.Env()...), lab.NewRuntime(t, path, s.Env()...)
			for _, r := range []*lab.Runtime{a, b} {
				bundle := lab.NewBundle(t, runc, rootfs, "sleep", "600").Annotate(annotations.Key, `[{name: shared, target: /data}]`)
				// runc names a container's cgroup by its id unless told.
				bundle.Spec.Linux.CgroupsPath = "/mooring-test-" + filepath.Base(r.Root)
				bundle.Save()
				if via == "hook" {
					bundle.AddHooks(bins.Mooring, s)
				}
				if err := r.Start(bundle, "same"); err != nil {
					t.Fatalf("start: %v\nlog: %s", err, s.Log())
				}
			}
			if got := claims(t, s); len(got) != 2 || got[0].Owner.Scope == got[1].Owner.Scope {
				t.Fatalf("claims %+v, want one per root", got)
			}
			if _, stderr, err := a.Exec("delete", "--force", "same"); err != nil {
				t.Fatalf("delete in root a: %v %s", err, stderr)
			}
			got := claims(t, s)
			if len(got) != 1 || got[0].Owner.Scope != b.Root {
				t.Fatalf("after deleting a's container: claims %+v, want b's (scope %s)", got, b.Root)
			}
			out, stderr, err := b.Exec("exec", "same", "sh", "-c", "echo still > /data/f && grep -c ' /data ' /proc/mounts")
			if err != nil || strings.TrimSpace(out) != "1" {
				t.Fatalf("b lost its volume: %q %v %s", out, err, stderr)
			}
			if _, stderr, err := b.Exec("delete", "--force", "same"); err != nil {
				t.Fatalf("delete in root b: %v %s", err, stderr)
			}
			if n := s.Attachments(); n != 0 {
				t.Fatalf("%d claims left\nlog: %s", n, s.Log())
			}
		})
	}
}

// TestShimDeleteRefusedKeepsClaims: runc refuses to delete a running
// container without --force; its volumes stay claimed.
func TestShimDeleteRefusedKeepsClaims(t *testing.T) {
	e := newShimEnv(t)
	if err := e.shim.Start(e.bundle(`[{name: d, target: /data}]`, "sleep 600"), "running"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.shim.Exec("delete", "running"); err == nil {
		t.Fatal("runc deleted a running container without --force")
	}
	if n := e.scratch.Attachments(); n != 1 {
		t.Fatalf("%d attachments after a refused delete, want 1\nlog: %s", n, e.scratch.Log())
	}
	if _, stderr, err := e.shim.Exec("delete", "--force", "running"); err != nil {
		t.Fatalf("delete --force: %v %s", err, stderr)
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments after delete --force", n)
	}
}

// TestShimCrunContainerIsAlive: crun keeps no state.json; the shim
// records the container's init process, so gc keeps a running crun
// container's claim.
func TestShimCrunContainerIsAlive(t *testing.T) {
	bins, rootfs, runc, s := lab.Binaries(t), lab.Rootfs(t), lab.Runc(t), lab.NewScratch(t)
	s.SetRuntimes(lab.Crun(t))
	shim := lab.NewRuntime(t, bins.Runtime, s.Env()...)
	b := lab.NewBundle(t, runc, rootfs, "sleep", "600").Annotate(annotations.Key, `[{name: c, target: /data}]`)
	b.Spec.Version = "1.0.2" // crun 1.8 refuses newer spec versions
	b.Save()
	if err := shim.Start(b, "crun-live"); err != nil {
		t.Fatalf("start: %v\nlog: %s", err, s.Log())
	}
	out, _, err := shim.Exec("state", "crun-live")
	var st struct{ Pid int }
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Pid <= 0 {
		t.Fatalf("crun state: %v %q", err, out)
	}
	if out, _, err := lab.RunCmd(t, time.Minute, s.Env(), bins.Mooring, "gc"); err != nil || !strings.Contains(out, "0 released, 1 kept") {
		t.Fatalf("gc released a running crun container's claim: %v\n%s", err, out)
	}
	if got := claims(t, s); len(got) != 1 || got[0].Owner.PID != st.Pid || got[0].Owner.PIDStart == 0 {
		t.Fatalf("claims %+v, want the owner's process to be the container's init %d", got, st.Pid)
	}
	if _, stderr, err := shim.Exec("delete", "--force", "crun-live"); err != nil {
		t.Fatalf("delete: %v %s", err, stderr)
	}
	if n := s.Attachments(); n != 0 {
		t.Fatalf("%d attachments after delete", n)
	}
}

// TestShimEnvRequestsHaveTheirOwnTenant: a volume an image asks for in
// MOORING_VOLUMES lives in the env tenant, never the default tenant's
// volume of the same name.
func TestShimEnvRequestsHaveTheirOwnTenant(t *testing.T) {
	e := newShimEnv(t)
	e.scratch.WriteConfig("allow_env_requests = true\n")
	if _, stderr, err := e.shim.Run(e.bundle(`[{name: pgdata, target: /data}]`, "echo operator > /data/f"), "by-annotation"); err != nil {
		t.Fatalf("annotation request: %v %s", err, stderr)
	}
	b := e.bundle("", "cat /data/f 2>/dev/null; echo image > /data/g")
	b.Spec.Process.Env = append(b.Spec.Process.Env, "MOORING_VOLUMES=[{name: pgdata, target: /data}]")
	b.Save()
	out, stderr, err := e.shim.Run(b, "by-env")
	if err != nil || strings.Contains(out, "operator") {
		t.Fatalf("env request reached the default tenant's volume: %q %v %s", out, err, stderr)
	}
	for _, rec := range []string{"default/pgdata.json", "env/pgdata.json"} {
		if _, err := os.Stat(filepath.Join(e.scratch.StateDir, "volumes", rec)); err != nil {
			t.Errorf("volume record %s: %v", rec, err)
		}
	}
}

// TestShimCRITenantCannotBeForged runs containerd CRI pods through the
// shim (runc's BinaryName): the tenant is the pod's namespace from the
// annotation containerd writes itself. A pod in team-b that copies
// containerd's namespace key into its own annotations (containerd is
// told to pass it through) still gets team-b's volume, not team-a's; one
// that names team-a under CRI-O's key is refused.
func TestShimCRITenantCannotBeForged(t *testing.T) {
	const nsKey, crioKey = "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"
	bins, s := lab.Binaries(t), lab.NewScratch(t)
	ctrd := lab.NewContainerd(t, lab.ContainerdOptions{
		BinaryName:     lab.WrapWithEnv(t, bins.Runtime, s.Env()),
		PodAnnotations: []string{nsKey, crioKey},
	})
	c := ctrd.CRI()
	req := `[{name: shared, target: /data}]`
	a, err := c.RunPod("team-a", "owner", map[string]string{annotations.KeyPod: req})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\n%s", err, ctrd.Log())
	}
	if code, err := c.RunContainer(a, "w", "sh", "-c", "echo team-a-secret > /data/f"); err != nil || code != 0 {
		t.Fatalf("team-a writer: exit %d %v\nlog: %s", code, err, s.Log())
	}
	b, err := c.RunPod("team-b", "thief", map[string]string{annotations.KeyPod: req, nsKey: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := c.RunContainer(b, "r", "sh", "-c", "test ! -e /data/f"); err != nil || code != 0 {
		t.Fatalf("team-b reached team-a's volume by forging %s: exit %d %v\nlog: %s", nsKey, code, err, s.Log())
	}
	// CRI-O's key does reach the spec from the pod's annotations (nothing
	// on containerd overwrites it): disagreeing with containerd's, it is
	// refused.
	forged, err := c.RunPod("team-b", "forger", map[string]string{annotations.KeyPod: req, crioKey: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	// containerd runs `runc create` at StartContainer.
	if _, err := c.RunContainer(forged, "r", "true"); err == nil || !strings.Contains(err.Error(), "forging") {
		t.Fatalf("a pod annotation naming CRI-O's key with another namespace: %v", err)
	}
	for _, rec := range []string{"team-a/shared.json", "team-b/shared.json"} {
		if _, err := os.Stat(filepath.Join(s.StateDir, "volumes", rec)); err != nil {
			t.Errorf("volume record %s: %v", rec, err)
		}
	}
	for _, p := range []*lab.Pod{a, b, forged} {
		if err := c.RemovePod(p); err != nil {
			t.Fatal(err)
		}
	}
	waitForAttachments(t, s, 0)
}
