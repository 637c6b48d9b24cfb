package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/config"
)

func specWith(t *testing.T, ann map[string]string, env ...string) *spec {
	t.Helper()
	b, err := json.Marshal(map[string]any{"process": map[string]any{"env": env}, "annotations": ann})
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRequestTenant: annotations serve the default tenant, or the pod's
// namespace for a CRI container (never the default); env requests get the
// env tenant, and none at all for a CRI container.
func TestRequestTenant(t *testing.T) {
	cfg := config.Default()
	cfg.AllowEnvRequests = true
	const req = `[{name: pgdata, target: /data}]`
	envReq := annotations.EnvVar + "=" + req
	for _, tc := range []struct {
		name       string
		ann        map[string]string
		env        []string
		wantTenant string
		wantErr    string
	}{
		{"plain annotation", map[string]string{annotations.Key: req}, nil, "default", ""},
		{"annotation wins over env", map[string]string{annotations.Key: req}, []string{envReq}, "default", ""},
		{"env request", nil, []string{envReq}, "env", ""},
		{"containerd pod", map[string]string{annotations.KeyPod: req, "io.kubernetes.cri.sandbox-namespace": "team-b", "io.kubernetes.cri.container-type": "container"}, nil, "team-b", ""},
		{"CRI-O pod", map[string]string{annotations.KeyPod: req, "io.kubernetes.pod.namespace": "team-b", "io.kubernetes.cri-o.ContainerType": "container"}, nil, "team-b", ""},
		{"CRI container without namespace", map[string]string{annotations.KeyPod: req, "io.kubernetes.cri.container-type": "container"}, nil, "", "cannot tell the pod's namespace"},
		{"CRI-O pod forging containerd's key", map[string]string{annotations.KeyPod: req, "io.kubernetes.cri.sandbox-namespace": "team-a", "io.kubernetes.pod.namespace": "team-b"}, nil, "", "forging"},
		{"env in a CRI container", map[string]string{"io.kubernetes.cri.sandbox-namespace": "team-b"}, []string{envReq}, "", "not served for Kubernetes containers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs, tenant, err := request(cfg, specWith(t, tc.ann, tc.env...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(reqs) != 1 || tenant != tc.wantTenant {
				t.Fatalf("got %v %q %v, want tenant %q", reqs, tenant, err, tc.wantTenant)
			}
		})
	}
	cfg.AllowEnvRequests = false
	if reqs, _, err := request(cfg, specWith(t, nil, envReq)); err != nil || reqs != nil {
		t.Fatalf("env request served although not allowed: %v %v", reqs, err)
	}
}

// TestRealRuntimeIgnoresPATH: a runtime configured by name is found only
// in the fixed search path, never in the inherited PATH.
func TestRealRuntimeIgnoresPATH(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "runc-from-path")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if p, err := realRuntime([]string{"runc-from-path"}); err == nil {
		t.Fatalf("found %s through PATH", p)
	}
	if p, err := realRuntime([]string{fake}); err != nil || p != fake {
		t.Fatalf("absolute runtime: %q %v", p, err)
	}
	if _, err := realRuntime([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("a missing runtime was accepted")
	}
	defer func(saved []string) { runtimePath = saved }(runtimePath)
	runtimePath = []string{dir}
	if p, err := realRuntime([]string{"runc-from-path"}); err != nil || p != fake {
		t.Fatalf("runtime by name in the search path: %q %v", p, err)
	}
}
