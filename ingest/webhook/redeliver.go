package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rosterd/rosterd/state"
)

// Redelivery is the outcome of sending one event once more to one
// endpoint.
type Redelivery struct {
	Endpoint  string `json:"endpoint"`
	Delivered bool   `json:"delivered"`
	Status    int    `json:"status,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Redeliver sends event id once more, out of band, and waits for the
// answers (each bounded by the timeout). The targets: endpointID when
// given; otherwise the endpoints that list the event as failed; otherwise
// every endpoint covering its organization. The send does not touch the
// order of regular deliveries. A 2xx removes the event from the
// endpoint's failed list, and enables the endpoint again if a 410 had
// disabled it. It returns state.ErrNotFound for an unknown event and
// ErrNoEndpoint when no configured endpoint matches.
func (d *Deliverer) Redeliver(ctx context.Context, id, endpointID string) ([]Redelivery, error) {
	raw, err := d.db.EventJSON(id)
	if err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, err)
	}
	var head struct {
		Org string `json:"organization_id"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, err)
	}
	org := head.Org
	d.mu.Lock()
	var targets []*endpoint
	for _, e := range d.endpoints {
		if e.covers(org) && (endpointID == "" || e.ID == endpointID) {
			targets = append(targets, e)
		}
	}
	d.mu.Unlock()
	if endpointID == "" {
		var failed []*endpoint
		for _, e := range targets {
			if _, err := d.db.FailedDelivery(e.ID, id); err == nil {
				failed = append(failed, e)
			} else if !errors.Is(err, state.ErrNotFound) {
				return nil, fmt.Errorf("redeliver %s: %w", id, err)
			}
		}
		if len(failed) > 0 {
			targets = failed
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("redeliver %s: %w", id, ErrNoEndpoint)
	}
	out := make([]Redelivery, len(targets))
	var wg sync.WaitGroup
	for i, e := range targets {
		wg.Go(func() {
			res := d.send(ctx, &e.Endpoint, id, raw)
			r := Redelivery{Endpoint: e.ID, Delivered: res.ok(), Status: res.status}
			if !res.ok() {
				r.Error = res.err.Error()
				d.metrics.outcome(e.ID, "redelivery_failed")
				d.log.Warn("webhook redelivery failed", "endpoint", e.ID, "event", id, "status", res.status, "err", res.err)
			} else {
				d.metrics.outcome(e.ID, "redelivered")
				d.log.Info("webhook event redelivered", "endpoint", e.ID, "event", id)
				if err := d.db.ClearFailed(e.ID, id); err != nil {
					d.log.Error("webhook redelivery: clear failed", "endpoint", e.ID, "event", id, "err", err)
				}
				// The store says whether it is disabled: another instance
				// of a fleet may have disabled it.
				d.mu.Lock()
				disabled := e.disabled
				d.mu.Unlock()
				if st, err := d.db.Endpoint(e.ID); disabled || (err == nil && st.Disabled) {
					d.enable(e.ID)
				}
			}
			out[i] = r
		})
	}
	wg.Wait()
	return out, nil
}

// EndpointStatus is an endpoint as the API lists it: its configuration
// without the secret, and its delivery state.
type EndpointStatus struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Organizations  []string   `json:"organizations"`
	Signature      string     `json:"signature"` // "standard" or "workos"
	Enabled        bool       `json:"enabled"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	Failed         int        `json:"failed"`
	Pending        int        `json:"pending"`
	// LagSeconds is the age of the oldest event the endpoint is sending
	// or retrying now (0 when it is caught up); Lag gives it per
	// organization with events pending, in organization order.
	LagSeconds float64  `json:"lag_seconds"`
	Lag        []OrgLag `json:"lag"`
}

// OrgLag is how far an endpoint's delivery of one organization's events
// is behind.
type OrgLag struct {
	Org     string `json:"organization_id"`
	Pending int    `json:"pending"`
	// Seconds is the age of the event being sent (0 while none is: the
	// worker has not started or is between reads).
	Seconds float64 `json:"lag_seconds"`
	// Attempts, NextAttemptAt and LastError describe the retries of the
	// next event, when it failed at least once.
	Attempts      int        `json:"attempts,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
}

// Endpoints returns the configured endpoints in id order.
func (d *Deliverer) Endpoints() ([]EndpointStatus, error) {
	d.mu.Lock()
	eps := make([]*endpoint, 0, len(d.endpoints))
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	d.mu.Unlock()
	slices.SortFunc(eps, func(a, b *endpoint) int { return strings.Compare(a.ID, b.ID) })
	byOrg, err := d.pendingByOrg(eps)
	if err != nil {
		return nil, err
	}
	ages := d.lags()
	pending := map[string]int{}
	lags := map[string][]OrgLag{}
	for k, n := range byOrg {
		pending[k.endpoint] += n
		if n == 0 {
			continue
		}
		l := OrgLag{Org: k.org, Pending: n, Seconds: ages[k].Seconds()}
		c, err := d.cursor(k)
		if err != nil {
			return nil, err
		}
		if c.Retry != nil {
			t := c.Retry.NextAt
			l.Attempts, l.NextAttemptAt, l.LastError = c.Retry.Attempts, &t, c.Retry.LastError
		}
		lags[k.endpoint] = append(lags[k.endpoint], l)
	}
	out := make([]EndpointStatus, 0, len(eps))
	for _, e := range eps {
		st, err := d.db.Endpoint(e.ID)
		if err != nil {
			return nil, err
		}
		failed, err := d.db.CountFailed(e.ID)
		if err != nil {
			return nil, err
		}
		s := EndpointStatus{ID: e.ID, URL: e.URL, Organizations: e.Organizations, Signature: "standard",
			Enabled: !st.Disabled, DisabledReason: st.DisabledReason, Failed: failed, Pending: pending[e.ID]}
		if s.Organizations == nil {
			s.Organizations = []string{}
		}
		s.Lag = lags[e.ID]
		if s.Lag == nil {
			s.Lag = []OrgLag{}
		}
		slices.SortFunc(s.Lag, func(a, b OrgLag) int { return strings.Compare(a.Org, b.Org) })
		if e.WorkOS {
			s.Signature = "workos"
		}
		if st.Disabled {
			t := st.DisabledAt
			s.DisabledAt = &t
		}
		for _, l := range s.Lag {
			s.LagSeconds = max(s.LagSeconds, l.Seconds)
		}
		out = append(out, s)
	}
	return out, nil
}

// HasEndpoint reports whether id is a configured endpoint.
func (d *Deliverer) HasEndpoint(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.endpoints[id] != nil
}
