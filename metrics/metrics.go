package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/mooring-dev/mooring/volume"
)

// scrapeTimeout bounds one collection of the volume figures.
const scrapeTimeout = 5 * time.Second

// TextfileName is the file mooring metrics --textfile writes in its
// directory.
const TextfileName = "mooring.prom"

var (
	volumeLabels = []string{"tenant", "volume", "pool"}
	poolLabels   = []string{"pool", "driver"}

	volCapacity    = desc("volume_stats_capacity_bytes", "Capacity in bytes of the volume's filesystem (staged volumes).", volumeLabels)
	volAvailable   = desc("volume_stats_available_bytes", "Bytes available to unprivileged users on the volume's filesystem (staged volumes).", volumeLabels)
	volUsed        = desc("volume_stats_used_bytes", "Bytes used on the volume's filesystem (staged volumes).", volumeLabels)
	volInodes      = desc("volume_stats_inodes", "Inodes of the volume's filesystem (staged volumes).", volumeLabels)
	volInodesFree  = desc("volume_stats_inodes_free", "Free inodes of the volume's filesystem (staged volumes).", volumeLabels)
	volInodesUsed  = desc("volume_stats_inodes_used", "Used inodes of the volume's filesystem (staged volumes).", volumeLabels)
	volProvisioned = desc("volume_provisioned_bytes", "Provisioned size of the volume.", volumeLabels)
	volAllocated   = desc("volume_allocated_bytes", "Bytes the volume's image takes on the pool's filesystem.", volumeLabels)
	volAttachments = desc("volume_attachments", "Containers holding the volume.", volumeLabels)
	volSnapshots   = desc("volume_snapshots", "Snapshots of the volume.", volumeLabels)
	poolCapacity   = desc("pool_capacity_bytes", "Capacity of the pool, as mooring pools ls shows it: the configured capacity, else a loop pool's directory filesystem less its reserve, or a block pool's devices.", poolLabels)
	poolFree       = desc("pool_free_bytes", "Free bytes of a loop pool's directory filesystem.", poolLabels)
	poolProvision  = desc("pool_provisioned_bytes", "Sum of the provisioned sizes of the pool's volumes.", poolLabels)
	poolUsed       = desc("pool_used_bytes", "Bytes the pool's images and snapshots take.", poolLabels)
	poolVolumes    = desc("pool_volumes", "Volumes in the pool.", poolLabels)
	scrapeErrors   = desc("stats_scrape_error", "1 when the last collection of volume figures failed.", nil)
)

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc("mooring_"+name, help, labels, nil)
}

// Source gives the volume and pool figures: a *volume.Manager, or a
// process that may replace its manager (the NRI plugin, configured by its
// runtime).
type Source interface {
	Stats(ctx context.Context, tenant, name string) ([]volume.VolumeStats, []volume.PoolUsage, error)
}

var _ Source = (*volume.Manager)(nil)

// Volumes is a prometheus.Collector of the volume and pool figures.
type Volumes struct {
	m Source
}

var _ prometheus.Collector = (*Volumes)(nil)

// NewVolumes collects m's figures at every scrape.
func NewVolumes(m Source) *Volumes { return &Volumes{m: m} }

// Describe implements prometheus.Collector.
func (c *Volumes) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{volCapacity, volAvailable, volUsed, volInodes, volInodesFree, volInodesUsed,
		volProvisioned, volAllocated, volAttachments, volSnapshots, poolCapacity, poolFree, poolProvision, poolUsed, poolVolumes, scrapeErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Volumes) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	vols, pools, err := c.m.Stats(ctx, "", "")
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrors, prometheus.GaugeValue, failed)
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for _, v := range vols {
		l := []string{v.Tenant, v.Name, v.Pool}
		gauge(volProvisioned, v.ProvisionedBytes, l...)
		gauge(volAllocated, v.AllocatedBytes, l...)
		gauge(volAttachments, int64(v.Attachments), l...)
		gauge(volSnapshots, int64(v.Snapshots), l...)
		if f := v.Filesystem; f != nil {
			gauge(volCapacity, f.CapacityBytes, l...)
			gauge(volAvailable, f.AvailableBytes, l...)
			gauge(volUsed, f.UsedBytes, l...)
			gauge(volInodes, f.Inodes, l...)
			gauge(volInodesFree, f.InodesFree, l...)
			gauge(volInodesUsed, f.InodesUsed, l...)
		}
	}
	for _, p := range pools {
		l := []string{p.Pool, p.Driver}
		gauge(poolCapacity, p.Capacity, l...)
		gauge(poolFree, p.Free, l...)
		gauge(poolProvision, p.Provisioned, l...)
		gauge(poolUsed, p.Used+p.Snapshots, l...)
		gauge(poolVolumes, int64(p.Volumes), l...)
	}
}

// Operations counts Acquire, Release and gc by result and error reason,
// with latency histograms; it is the volume.Observer of a long-running
// process.
type Operations struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ volume.Observer = (*Operations)(nil)

// NewOperations registers the operation metrics with reg.
func NewOperations(reg prometheus.Registerer) *Operations {
	o := &Operations{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mooring_operations_total",
			Help: "Volume operations (acquire, release, gc) by result (ok, error) and error reason.",
		}, []string{"operation", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mooring_operation_duration_seconds",
			Help: "Latency of volume operations by result.",
			// Acquire of an existing volume takes milliseconds; a first
			// use with mkfs and fsck, or a gc, can take seconds.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"operation", "result"}),
	}
	reg.MustRegister(o.total, o.duration)
	return o
}

// Observe implements volume.Observer.
func (o *Operations) Observe(op string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	o.total.WithLabelValues(op, result, volume.Reason(err)).Inc()
	o.duration.WithLabelValues(op, result).Observe(took.Seconds())
}

// Registry holds mooring's metrics.
type Registry struct {
	*prometheus.Registry
	// Operations is the observer to give the volume manager
	// (volume.WithObserver); nil when the registry has no operation
	// metrics.
	Operations *Operations
}

// NewRegistry returns a registry, with operation metrics when ops is set
// (a process that runs operations); Watch adds the volume figures.
func NewRegistry(ops bool) *Registry {
	r := &Registry{Registry: prometheus.NewRegistry()}
	if ops {
		r.Operations = NewOperations(r)
	}
	return r
}

// Watch adds m's volume and pool figures.
func (r *Registry) Watch(m Source) { r.MustRegister(NewVolumes(m)) }

// Serve listens on addr (so a bad address fails now) and serves the
// metrics at /metrics until ctx ends.
func (r *Registry) Serve(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// WriteTextfile writes reg's metrics to dir/TextfileName atomically (a
// temp file in dir, fsync, rename), so node_exporter never reads half a
// file.
func WriteTextfile(dir string, g prometheus.Gatherer) error {
	families, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+TextfileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	enc := expfmt.NewEncoder(f, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err = enc.Encode(mf); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Chmod(0o644) // node_exporter may run unprivileged
	}
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, TextfileName))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write metrics to %s: %w", dir, err)
	}
	return nil
}
