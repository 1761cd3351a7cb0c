package sync

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	store, sink := newMemStore(), &fakeSink{}
	newEngine := func(src Source) *Engine {
		return New([]SourceSpec{{Name: "hr", Source: src}},
			[]SinkSpec{{Name: "app", Sink: sink, Concurrency: 4, Safety: DefaultSafety}},
			store, Options{Safety: DefaultSafety, Metrics: m}, slog.New(slog.DiscardHandler))
	}
	all := people(20)
	if _, err := newEngine(all).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	sink.fail = map[string]error{"disable_user E019": errBoom}
	if _, err := newEngine(all[:19]).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := newEngine(all[:5]).Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"runs success", m.runs.WithLabelValues("success"), 1},
		{"runs partial", m.runs.WithLabelValues("partial"), 1},
		{"runs held", m.runs.WithLabelValues("held"), 1},
		{"created users", m.operations.WithLabelValues("app", "create_user", "success"), 20},
		{"failed disable", m.operations.WithLabelValues("app", "disable_user", "failure"), 1},
		{"planned disables, last plan", m.planned.WithLabelValues("app", "disable_user"), 15},
		{"planned creates, last plan", m.planned.WithLabelValues("app", "create_user"), 0},
		{"snapshot", m.snapshotIdentities.WithLabelValues("app"), 20},
		{"source", m.sourceIdentities.WithLabelValues("hr"), 5},
		{"guard", m.guardTrips.WithLabelValues("min_source_ratio"), 1},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s = %g, want %g", tt.name, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.runDuration); n != 1 {
		t.Errorf("run duration series %d, want 1", n)
	}
	if got := testutil.ToFloat64(m.lastSuccess); got == 0 {
		t.Error("last success timestamp not set")
	}
}
