package sync

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics. They are made once per process and
// handed to every Engine built in it, so that a reloaded configuration keeps counting
// on the same series. Labels come only from configuration names and fixed lists.
type Metrics struct {
	runs               *prometheus.CounterVec
	runDuration        prometheus.Histogram
	phaseDuration      *prometheus.HistogramVec
	lastRun            prometheus.Gauge
	lastSuccess        prometheus.Gauge
	sourceIdentities   *prometheus.GaugeVec
	sourceReadErrors   *prometheus.CounterVec
	planned            *prometheus.GaugeVec
	operations         *prometheus.CounterVec
	guardTrips         *prometheus.CounterVec
	snapshotIdentities *prometheus.GaugeVec
	panics             prometheus.Counter
	breakerTrips       *prometheus.CounterVec
	drifts             *prometheus.CounterVec
	driftRepairs       *prometheus.CounterVec
	requestDuration    *prometheus.HistogramVec
	retries            *prometheus.CounterVec
	invitations        *prometheus.CounterVec
}

// Guards lists every guard name, for metrics.
var Guards = []string{"max_disables", "max_disable_percent", "max_deletes", "min_source_ratio", "empty_source"}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_runs_total", Help: "Runs, by how they ended.",
		}, []string{"result"}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "idsync_run_duration_seconds", Help: "Duration of runs.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14), // 0.1 s to 27 min
		}),
		phaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "idsync_phase_duration_seconds", Help: "Duration of a run's phases: read, plan, apply, record.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"phase"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idsync_last_run_timestamp_seconds", Help: "When the last run ended, whatever its result.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idsync_last_success_timestamp_seconds", Help: "When the last run that applied everything it planned ended.",
		}),
		sourceIdentities: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idsync_source_identities", Help: "Identities the source gave in its last read, invalid ones included.",
		}, []string{"source"}),
		sourceReadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_source_read_errors_total", Help: "Reads of the source that failed; the run stopped before planning.",
		}, []string{"source"}),
		planned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idsync_planned_operations", Help: "Operations in the last plan, dry runs included.",
		}, []string{"sink", "operation"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_operations_total", Help: "Operations applied, by result: success, failure, or skipped (not attempted).",
		}, []string{"sink", "operation", "result"}),
		guardTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_guard_trips_total", Help: "Safety limits tripped; a trip holds the run unless accepted.",
		}, []string{"guard"}),
		snapshotIdentities: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idsync_snapshot_identities", Help: "Identities in the sink's snapshot.",
		}, []string{"sink"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idsync_run_panics_total", Help: "Runs that panicked; the panic was recovered and logged.",
		}),
		drifts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_drift_found_total", Help: "Accounts found changed outside idsync by a verification, by kind: field, active, gone. The next run repairs them.",
		}, []string{"sink", "kind"}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_drift_repaired_total", Help: "Accounts found changed outside idsync that a run then put right.",
		}, []string{"sink"}),
		breakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_circuit_breaker_trips_total", Help: "Runs in which the sink's circuit breaker opened after too many failures in a row.",
		}, []string{"sink"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "idsync_sink_request_duration_seconds", Help: "Duration of requests to the sink's API, retries apart.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"sink", "endpoint"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_sink_retries_total", Help: "Requests to the sink retried, by reason: network, status_5xx, status_429.",
		}, []string{"sink", "reason"}),
		invitations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idsync_invitations_total", Help: "Invitations to new accounts, by channel and result: sent, failed (tried again next run), expired (the person needs a manual reset).",
		}, []string{"sink", "channel", "result"}),
	}
	reg.MustRegister(m.runs, m.runDuration, m.phaseDuration, m.lastRun, m.lastSuccess, m.sourceIdentities,
		m.sourceReadErrors, m.planned, m.operations, m.guardTrips, m.snapshotIdentities, m.panics,
		m.breakerTrips, m.drifts, m.driftRepairs, m.requestDuration, m.retries, m.invitations)
	for _, r := range []Result{ResultSuccess, ResultPartial, ResultFailed, ResultHeld, ResultDryRun} {
		m.runs.WithLabelValues(string(r))
	}
	for _, g := range Guards {
		m.guardTrips.WithLabelValues(g)
	}
	return m
}

// Panicked counts a run that panicked.
func (m *Metrics) Panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

// SinkObserver returns what a sink's HTTP client reports its requests to.
func (m *Metrics) SinkObserver(sink string) *SinkObserver {
	return &SinkObserver{m: m, sink: sink}
}

// SinkObserver records one sink's requests and retries.
type SinkObserver struct {
	m    *Metrics
	sink string
}

// Request records one request to endpoint (a fixed label such as "user.create").
func (o *SinkObserver) Request(endpoint string, d time.Duration) {
	if o != nil && o.m != nil {
		o.m.requestDuration.WithLabelValues(o.sink, endpoint).Observe(d.Seconds())
	}
}

// Retry records a retry: reason is network, status_5xx or status_429.
func (o *SinkObserver) Retry(reason string) {
	if o != nil && o.m != nil {
		o.m.retries.WithLabelValues(o.sink, reason).Inc()
	}
}

// sinks prepares a sink's series, so that they exist at zero before anything happens.
func (m *Metrics) sinks(names []string) {
	if m == nil {
		return
	}
	for _, s := range names {
		m.breakerTrips.WithLabelValues(s)
		m.driftRepairs.WithLabelValues(s)
		for _, k := range []string{"field", "active", "gone"} {
			m.drifts.WithLabelValues(s, k)
		}
		for _, k := range OpKinds {
			for _, r := range []string{"success", "failure", "skipped"} {
				m.operations.WithLabelValues(s, k.String(), r)
			}
		}
	}
}

// The engine's hooks; each is a no-op without metrics.

func (m *Metrics) phase(name string, since time.Time, now time.Time) {
	if m != nil {
		m.phaseDuration.WithLabelValues(name).Observe(now.Sub(since).Seconds())
	}
}

func (m *Metrics) sourceRead(source string, n int, delta bool, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.sourceReadErrors.WithLabelValues(source).Inc()
		return
	}
	if !delta { // the gauge is the source's size, which a delta does not tell
		m.sourceIdentities.WithLabelValues(source).Set(float64(n))
	}
}

func (m *Metrics) plan(p *Plan, snapshot int) {
	if m == nil {
		return
	}
	counts := p.Counts()
	for _, k := range OpKinds {
		m.planned.WithLabelValues(p.Sink, k.String()).Set(float64(counts[k]))
	}
	m.snapshotIdentities.WithLabelValues(p.Sink).Set(float64(snapshot))
}

func (m *Metrics) trips(trips []GuardTrip) {
	if m == nil {
		return
	}
	for _, g := range trips {
		m.guardTrips.WithLabelValues(g.Guard).Inc()
	}
}

func (m *Metrics) operation(sink string, k OpKind, result string) {
	if m != nil {
		m.operations.WithLabelValues(sink, k.String(), result).Inc()
	}
}

// invitation counts one invitation idsync delivered itself (channel email).
func (m *Metrics) invitation(sink, result string) {
	if m != nil {
		m.invitations.WithLabelValues(sink, "email", result).Inc()
	}
}

func (m *Metrics) snapshotSize(sink string, delta int) {
	if m != nil && delta != 0 {
		m.snapshotIdentities.WithLabelValues(sink).Add(float64(delta))
	}
}

func (m *Metrics) runEnded(s *RunSummary) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(string(s.Result)).Inc()
	if s.Result == ResultDryRun {
		return
	}
	m.runDuration.Observe(s.Finished.Sub(s.Started).Seconds())
	m.lastRun.Set(float64(s.Finished.UnixNano()) / 1e9)
	if s.Result == ResultSuccess {
		m.lastSuccess.Set(float64(s.Finished.UnixNano()) / 1e9)
	}
}

func (m *Metrics) breakerTrip(sink string) {
	if m != nil {
		m.breakerTrips.WithLabelValues(sink).Inc()
	}
}

func (m *Metrics) drift(sink string, d Drift) {
	if m == nil {
		return
	}
	if d.Fields != 0 {
		m.drifts.WithLabelValues(sink, "field").Inc()
	}
	if d.Active {
		m.drifts.WithLabelValues(sink, "active").Inc()
	}
	if d.Gone {
		m.drifts.WithLabelValues(sink, "gone").Inc()
	}
}

func (m *Metrics) driftRepaired(sink string) {
	if m != nil {
		m.driftRepairs.WithLabelValues(sink).Inc()
	}
}
