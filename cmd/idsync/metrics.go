package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"

	dsync "github.com/idsync/idsync/sync"
)

// newRegistry makes the process's registry: idsync's metrics and its build info, and,
// for a daemon, the Go and process collectors. A one-shot run leaves those out: its
// metrics go to a Pushgateway or node_exporter's textfile collector, which have their
// own, and a go_* series there would clash.
func newRegistry(daemon bool) (*prometheus.Registry, *dsync.Metrics) {
	reg := prometheus.NewRegistry()
	if daemon {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "idsync_build_info", Help: "idsync's version and the Go version it was built with; always 1.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version(), runtime.Version()).Set(1)
	reg.MustRegister(info)
	return reg, dsync.NewMetrics(reg)
}

// version is the module version the binary was built from, "(devel)" from a checkout.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// reportMetrics sends a one-shot run's metrics where the flags say.
func reportMetrics(ctx context.Context, f *flags, reg *prometheus.Registry) error {
	if f.metricsFile != "" {
		if err := writeTextfile(f.metricsFile, reg); err != nil {
			return fmt.Errorf("--metrics-file: %w", err)
		}
	}
	if f.pushGateway != "" {
		// Text format: readable in a capture, and every Pushgateway takes it.
		p := push.New(f.pushGateway, "idsync").Gatherer(reg).Format(expfmt.NewFormat(expfmt.TypeTextPlain))
		if err := p.PushContext(ctx); err != nil {
			return fmt.Errorf("--push-gateway: %w", err)
		}
	}
	return nil
}

// writeTextfile writes the registry's metrics in the text format, atomically (a temporary
// file renamed into place), and readable by others (0644): node_exporter runs as
// another user. prometheus.WriteToTextfile leaves its temporary file's 0600.
func writeTextfile(path string, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	enc := expfmt.NewEncoder(tmp, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
