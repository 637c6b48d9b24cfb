// Package metrics exports mooring's volume, pool and operation figures in
// the Prometheus format: from a long-running process (mooring-nri
// --metrics-addr) over HTTP, and, for hosts that run only the hooks or the
// shim, as a file for node_exporter's textfile collector (mooring metrics
// --textfile DIR).
//
// Operation counters and latency histograms (acquire, release, gc:
// Operations, a volume.Observer) exist only in the long-running process
// that runs the operations, mooring-nri: hooks and the shim live for one
// container and keep no counters, and the textfile writer exports only the
// volume and pool figures, which it reads from the journal.
//
// Volume figures are named after kubelet's kubelet_volume_stats_* (with
// the prefix mooring_volume_stats_) and computed the same way from statfs
// of the staging mount, so dashboards and alerts written for kubelet's
// work unchanged. They are read from the journal at every scrape; nothing
// is cached. Pool figures are the core's one pool listing (mooring pools
// ls).
package metrics
