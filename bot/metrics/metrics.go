// Package metrics is the daemon's Prometheus registry and its HTTP
// endpoints (/metrics, /healthz, /readyz). Each component of the daemon
// updates the collectors it owns.
package metrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own.
type Metrics struct {
	Registry       *prometheus.Registry
	Events         *prometheus.CounterVec // by outcome
	Acks           prometheus.Counter     // envelopes acknowledged
	Unqueued       prometheus.Counter     // events left unacknowledged: the queue was full
	Interactions   *prometheus.CounterVec // envelopes for the people pool, by type
	BreakerTrips   *prometheus.CounterVec // by regex id
	ScanSeconds    prometheus.Histogram   // one message
	Leaks          *prometheus.CounterVec // by rule and action
	Deletions      *prometheus.CounterVec // attempts by result
	Pending        prometheus.Gauge       // deletions pending
	SlackErrors    *prometheus.CounterVec // by method and code
	Reconnects     prometheus.Counter     // Socket Mode connections after the first
	CaughtUp       prometheus.Counter     // messages the catch-up read from history
	Catchups       *prometheus.CounterVec // catch-ups run, by result
	Generation     prometheus.Gauge       // rules generation loaded
	Rules          prometheus.Gauge       // rules compiled
	Notifications  *prometheus.CounterVec // by kind and result
	ConnectedGauge prometheus.Gauge
	// SlackConnections is the app's connections as Slack counts them
	// (hello's num_connections), every replica's.
	SlackConnections prometheus.Gauge
	// DB reads the database's connection pool figures; set by Run.
	DB atomic.Pointer[func() sql.DBStats]
}

// New creates the metrics on a new registry (with Go and process
// collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_events_total",
			Help: "Socket Mode events handled, by outcome: clean, leak, redelivered, skipped, out_of_scope, allowlisted, malformed, record_failed."}, []string{"outcome"}),
		Interactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_interactions_total",
			Help: "Envelopes answered by the interaction pool (buttons, modals, /securechat, the Home tab), by envelope type."}, []string{"type"}),
		Acks: prometheus.NewCounter(prometheus.CounterOpts{Name: "securechat_events_acked_total", Help: "Envelopes acknowledged to Slack."}),
		BreakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_breaker_trips_total",
			Help: "Rules the runaway-rule breaker switched to monitor, by regex id."}, []string{"regex_id"}),
		Unqueued: prometheus.NewCounter(prometheus.CounterOpts{Name: "securechat_events_unqueued_total",
			Help: "Events left unacknowledged because every worker was busy and the queue was full; Slack sends them again."}),
		ScanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "securechat_scan_duration_seconds",
			Help: "Time to normalise and scan one message.", Buckets: prometheus.ExponentialBuckets(0.000005, 4, 10)}),
		Leaks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_leaks_total",
			Help: "New leaks recorded, by regex id and action."}, []string{"regex_id", "action"}),
		Deletions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_deletions_total",
			Help: "chat.delete outcomes: deleted, failed, retry, rate_limited."}, []string{"result"}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "securechat_deletions_pending", Help: "Deletions waiting in the database."}),
		SlackErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_slack_api_errors_total",
			Help: "Slack Web API errors, by method and error code (or HTTP status)."}, []string{"method", "code"}),
		CaughtUp: prometheus.NewCounter(prometheus.CounterOpts{Name: "securechat_catchup_messages_total",
			Help: "Messages the catch-up read from history after downtime."}),
		Catchups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_catchups_total",
			Help: "Catch-ups run after downtime, by result: done, failed."}, []string{"result"}),
		Reconnects:     prometheus.NewCounter(prometheus.CounterOpts{Name: "securechat_reconnects_total", Help: "Socket Mode reconnections."}),
		Generation:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "securechat_rules_generation", Help: "Generation of the rule set in use."}),
		Rules:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "securechat_rules", Help: "Rules compiled and in use."}),
		ConnectedGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "securechat_connected", Help: "Socket Mode connections of this daemon that are up."}),
		SlackConnections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "securechat_slack_connections",
			Help: "The app's Socket Mode connections as Slack counted them at the last hello (every replica's)."}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "securechat_notifications_total",
			Help: "Notifications (author, alert, webhook) by result: sent, failed, retry."}, []string{"kind", "result"}),
	}
	pool := func(f func(sql.DBStats) int64) func() float64 {
		return func() float64 {
			if st := m.DB.Load(); st != nil {
				return float64(f((*st)()))
			}
			return 0
		}
	}
	r.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "securechat_db_connections_open", Help: "SQLite connections open in the daemon's pool."},
			pool(func(s sql.DBStats) int64 { return int64(s.OpenConnections) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "securechat_db_connections_closed_total",
			Help: "SQLite connections the pool closed and will open again: many mean churn."},
			pool(func(s sql.DBStats) int64 { return s.MaxIdleClosed + s.MaxIdleTimeClosed + s.MaxLifetimeClosed })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "securechat_db_connection_waits_total",
			Help: "Times a query waited for a free SQLite connection."},
			pool(func(s sql.DBStats) int64 { return s.WaitCount })))
	r.MustRegister(m.Events, m.Interactions, m.Acks, m.Unqueued, m.BreakerTrips, m.ScanSeconds, m.Leaks, m.Deletions, m.Pending, m.SlackErrors, m.Reconnects,
		m.Generation, m.Rules, m.Notifications, m.ConnectedGauge, m.SlackConnections, m.CaughtUp, m.Catchups,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Pinger is what the health checks ask: *store.Store is one.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Serve serves /metrics, /healthz and /readyz on ln until ctx ends.
// /healthz (liveness) answers 200 while the database answers; /readyz
// answers 200 only when ready says so: the database at the expected
// schema, a Socket Mode connection up, the rules loaded.
func Serve(ctx context.Context, ln net.Listener, m *Metrics, db Pinger, ready func(context.Context) error) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	check := func(probe func(context.Context) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := probe(pctx); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		}
	}
	mux.HandleFunc("/healthz", check(func(ctx context.Context) error {
		if err := db.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		return nil
	}))
	mux.HandleFunc("/readyz", check(ready))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
