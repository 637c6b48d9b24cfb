// Package nri is mooring-nri, an NRI plugin for containerd (≥ 1.7) and
// CRI-O (≥ 1.26): Kubernetes pods ask for volumes in their annotations.
//
// CreateContainer reads the request from the pod's annotations (the
// per-container key first), takes the tenant from the pod's namespace
// (never from an annotation), acquires the volumes with the container id as
// owner and answers with an adjustment that adds a bind mount per volume.
// StopContainer and RemoveContainer release. Synchronize, at every
// (re)connection, reconciles the journal against the containers the runtime
// lists, and the plugin reconciles periodically against what it has seen
// since. It reconnects with backoff when the runtime goes away.
package nri
