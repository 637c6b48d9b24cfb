package annotations

// Annotations CRI runtimes set on the OCI spec of a pod's containers.
var (
	// criContainerName is set by containerd and CRI-O.
	criContainerName = []string{"io.kubernetes.cri.container-name", "io.kubernetes.container.name"}
	// criContainerType says "sandbox" for the pod's pause container.
	criContainerType = []string{"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}
)

// CRIContainerName returns the container's name in its pod as the CRI
// runtime recorded it, or "" outside Kubernetes.
func CRIContainerName(ann map[string]string) string {
	for _, k := range criContainerName {
		if n := ann[k]; n != "" {
			return n
		}
	}
	return ""
}

// IsCRISandbox reports whether the spec is a pod's sandbox (pause)
// container, which never gets volumes: the pod key is for the pod's
// workload containers.
func IsCRISandbox(ann map[string]string) bool {
	for _, k := range criContainerType {
		if ann[k] == "sandbox" {
			return true
		}
	}
	return false
}
