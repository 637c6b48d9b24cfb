package annotations

import (
	"errors"
	"fmt"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// ErrCRITenant marks a container a CRI runtime made whose Kubernetes
// namespace cannot be told with certainty: mooring refuses it rather
// than serve it from the default tenant.
var ErrCRITenant = errors.New("cannot tell the pod's namespace")

// criNamespaceKeys are, per CRI runtime, the spec annotation that runtime
// writes with the pod's namespace after it has copied the pod's own
// annotations, so a pod cannot forge it:
//   - containerd: io.kubernetes.cri.sandbox-namespace (its CRI defaults
//     are applied after the pod_annotations passthrough);
//   - CRI-O: io.kubernetes.pod.namespace (the kubelet's container label,
//     added after the pod's annotations and the container's).
var criNamespaceKeys = []struct{ runtime, key string }{
	{"containerd", "io.kubernetes.cri.sandbox-namespace"},
	{"CRI-O", "io.kubernetes.pod.namespace"},
}

// criMarkers say a CRI runtime made the spec.
var criMarkers = []string{
	"io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-id", "io.kubernetes.cri.container-type",
	"io.kubernetes.pod.namespace", "io.kubernetes.cri-o.SandboxID", "io.kubernetes.cri-o.ContainerType",
}

// Tenant returns the tenant of a container from its spec annotations:
// the pod's namespace when a CRI runtime made it, else defaultTenant.
//
// Each runtime overwrites its own key, but a pod's annotations may carry
// the other runtime's key with any value (CRI-O copies every pod
// annotation into the spec). Where both keys are present they must
// agree; a CRI container without a valid namespace is refused
// (ErrCRITenant), never served from defaultTenant.
func Tenant(ann map[string]string, defaultTenant string) (string, error) {
	if !IsCRI(ann) {
		return defaultTenant, nil
	}
	ns, from := "", ""
	for _, k := range criNamespaceKeys {
		v, ok := ann[k.key]
		switch {
		case !ok:
			continue
		case !vocab.IsLabel(v):
			return "", fmt.Errorf("%w: %s %q (%s) is not a namespace name", ErrCRITenant, k.key, v, k.runtime)
		case from != "" && v != ns:
			return "", fmt.Errorf("%w: %s says %q but %s says %q; a pod annotation is forging one", ErrCRITenant, from, ns, k.key, v)
		}
		ns, from = v, k.key
	}
	if from == "" {
		return "", fmt.Errorf("%w: the container has CRI annotations but neither %s (containerd) nor %s (CRI-O)", ErrCRITenant, criNamespaceKeys[0].key, criNamespaceKeys[1].key)
	}
	return ns, nil
}

// IsCRI reports whether a CRI runtime made the spec.
func IsCRI(ann map[string]string) bool {
	for _, k := range criMarkers {
		if _, ok := ann[k]; ok {
			return true
		}
	}
	return false
}
