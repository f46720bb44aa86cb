package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterd/rosterd/state"
)

// metrics are the ingest metrics; registered when Config.Registerer is set.
type metrics struct {
	batches  *prometheus.CounterVec
	events   *prometheus.CounterVec
	duration prometheus.Histogram
	// retries counts failed runs of batches that wait for a retry;
	// waiting is the number of batches waiting (order.go).
	retries prometheus.Counter
	waiting prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosterd_ingest_batches_total", Help: "Batches by outcome (applied, unchanged, rejected, held, superseded).",
		}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosterd_ingest_events_total", Help: "Events emitted by type.",
		}, []string{"event"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rosterd_ingest_batch_duration_seconds", Help: "Time to validate, diff and apply a batch.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_ingest_batch_retries_total", Help: "Runs of batches that failed for a reason outside their files (full disk, I/O error, panic) and are retried.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rosterd_ingest_batches_waiting", Help: "Batches waiting for a retry after a failure outside their files.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.batches, m.events, m.duration, m.retries, m.waiting} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(b state.Batch, r *diffResult, d time.Duration) {
	m.batches.WithLabelValues(b.Status).Inc()
	m.duration.Observe(d.Seconds())
	if b.Status != state.BatchApplied {
		return
	}
	c := b.Changes
	for typ, n := range map[string]int{
		state.EventUserCreated:      c.UsersCreated,
		state.EventUserUpdated:      c.UsersUpdated + c.UsersDeactivated,
		state.EventUserDeleted:      c.UsersDeleted,
		state.EventGroupCreated:     c.GroupsCreated,
		state.EventGroupUpdated:     c.GroupsUpdated,
		state.EventGroupDeleted:     c.GroupsDeleted,
		state.EventGroupUserAdded:   c.MembershipsAdded,
		state.EventGroupUserRemoved: c.MembershipsRemoved,
	} {
		if n > 0 {
			m.events.WithLabelValues(typ).Add(float64(n))
		}
	}
}
