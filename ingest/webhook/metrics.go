package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the delivery metrics. Labels are bounded: endpoint is one
// of the configured endpoint ids, outcome one of delivered, retry,
// failed, gone, redelivered, redelivery_failed.
type metrics struct {
	d          *Deliverer
	deliveries *prometheus.CounterVec
	age        *prometheus.HistogramVec
	lagDesc    *prometheus.Desc
	pendDesc   *prometheus.Desc
	enDesc     *prometheus.Desc
}

func newMetrics(d *Deliverer) *metrics {
	return &metrics{
		d: d,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosterd_webhook_deliveries_total",
			Help: "Webhook delivery attempts by endpoint and outcome (delivered, retry, failed after the last retry, gone = 410 disabled the endpoint, redelivered, redelivery_failed).",
		}, []string{"endpoint", "outcome"}),
		age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rosterd_webhook_delivered_event_age_seconds",
			Help:    "Time from an event's commit (its batch applied) to its delivery.",
			Buckets: []float64{.005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600},
		}, []string{"endpoint"}),
		lagDesc: prometheus.NewDesc("rosterd_webhook_delivery_lag_seconds",
			"Age of the oldest event an endpoint is sending or retrying right now; 0 when it is caught up.", []string{"endpoint"}, nil),
		pendDesc: prometheus.NewDesc("rosterd_webhook_pending_events",
			"Events committed and not yet delivered or failed, per endpoint.", []string{"endpoint"}, nil),
		enDesc: prometheus.NewDesc("rosterd_webhook_endpoint_enabled",
			"1 when the endpoint is enabled, 0 when a 410 Gone disabled it.", []string{"endpoint"}, nil),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.deliveries, m.age, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) outcome(endpoint, outcome string) {
	m.deliveries.WithLabelValues(endpoint, outcome).Inc()
}

func (m *metrics) lag(endpoint string, d time.Duration) {
	m.age.WithLabelValues(endpoint).Observe(max(d, 0).Seconds())
}

// Describe and Collect make the gauges computed at scrape time.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.lagDesc
	ch <- m.pendDesc
	ch <- m.enDesc
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	d := m.d
	d.mu.Lock()
	eps := make([]*endpoint, 0, len(d.endpoints))
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	d.mu.Unlock()
	lag := map[string]time.Duration{}
	for k, l := range d.lags() {
		lag[k.endpoint] = max(lag[k.endpoint], l)
	}
	for _, e := range eps {
		ch <- prometheus.MustNewConstMetric(m.lagDesc, prometheus.GaugeValue, lag[e.ID].Seconds(), e.ID)
		en := 1.0
		if e.disabled {
			en = 0
		}
		ch <- prometheus.MustNewConstMetric(m.enDesc, prometheus.GaugeValue, en, e.ID)
	}
	pending, err := d.pending(eps)
	if err != nil {
		d.log.Error("webhook metrics: count pending events", "err", err)
		return
	}
	for _, e := range eps {
		ch <- prometheus.MustNewConstMetric(m.pendDesc, prometheus.GaugeValue, float64(pending[e.ID]), e.ID)
	}
}

// lags returns, per endpoint and organization with an event in flight,
// the age of that event: how far delivery lags behind the batches.
// Pairs that are caught up are absent.
func (d *Deliverer) lags() map[wkey]time.Duration {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[wkey]time.Duration{}
	for k, w := range d.workers {
		if !w.head.IsZero() {
			out[k] = max(now.Sub(w.head), 0)
		}
	}
	return out
}

// pending counts each endpoint's events not yet delivered or failed.
func (d *Deliverer) pending(eps []*endpoint) (map[string]int, error) {
	byOrg, err := d.pendingByOrg(eps)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for k, n := range byOrg {
		out[k.endpoint] += n
	}
	return out, nil
}

// pendingByOrg counts the events not yet delivered or failed of each
// endpoint and organization it covers, with the cursor each count is from.
func (d *Deliverer) pendingByOrg(eps []*endpoint) (map[wkey]int, error) {
	orgs, err := d.knownOrgs(eps)
	if err != nil {
		return nil, err
	}
	out := map[wkey]int{}
	for _, e := range eps {
		for _, org := range orgs {
			if !e.covers(org) {
				continue
			}
			k := wkey{e.ID, org}
			c, err := d.cursor(k)
			if err != nil {
				return nil, err
			}
			n, err := d.db.CountEvents(org, c.After)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
	}
	return out, nil
}
