package annotations

import (
	"errors"
	"testing"
)

func TestTenant(t *testing.T) {
	const (
		ctrd = "io.kubernetes.cri.sandbox-namespace"
		crio = "io.kubernetes.pod.namespace"
	)
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want string // "" means refused
	}{
		{"plain OCI", map[string]string{Key: "[]"}, "dflt"},
		{"containerd", map[string]string{ctrd: "team-a", "io.kubernetes.cri.container-type": "container"}, "team-a"},
		{"CRI-O", map[string]string{crio: "team-b", "io.kubernetes.cri-o.ContainerType": "container"}, "team-b"},
		{"both agree", map[string]string{ctrd: "team-a", crio: "team-a"}, "team-a"},
		// CRI-O copies pod annotations into the spec: a pod in team-b
		// naming containerd's key cannot reach team-a.
		{"CRI-O pod forging containerd's key", map[string]string{ctrd: "team-a", crio: "team-b", "io.kubernetes.cri-o.ContainerType": "container"}, ""},
		{"containerd pod forging CRI-O's key", map[string]string{ctrd: "team-b", crio: "team-a"}, ""},
		{"CRI marker without a namespace", map[string]string{"io.kubernetes.cri.container-type": "container"}, ""},
		{"CRI-O marker without a namespace", map[string]string{"io.kubernetes.cri-o.SandboxID": "x"}, ""},
		{"empty namespace", map[string]string{ctrd: ""}, ""},
		{"namespace that is no name", map[string]string{crio: "../default"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Tenant(tc.ann, "dflt")
			if tc.want == "" {
				if !errors.Is(err, ErrCRITenant) {
					t.Fatalf("got %q %v, want ErrCRITenant", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}
