package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
)

// Endpoint is one webhook receiver (SPEC §7).
type Endpoint struct {
	// ID names the endpoint in the API, the metrics and the delivery
	// state. Empty means "wh_" + the first 10 hex digits of the SHA-256 of
	// URL; changing the URL then makes a new endpoint (starting from the
	// events committed after it is first seen), so give an explicit ID to
	// keep an endpoint's cursor across a change of address.
	ID string `json:"id"`
	// URL receives one POST per event; http or https.
	URL string `json:"url"`
	// Secret signs every request.
	Secret Secret `json:"secret"`
	// Organizations limits the endpoint to these organizations; empty
	// means all.
	Organizations []string `json:"organizations,omitempty"`
	// WorkOS adds the WorkOS-Signature header beside the Standard
	// Webhooks ones (config: signature = "workos").
	WorkOS bool `json:"workos,omitempty"`
}

// DefaultEndpointID is the ID an endpoint without one gets.
func DefaultEndpointID(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "wh_" + hex.EncodeToString(sum[:])[:10]
}

// covers reports whether the endpoint receives org's events.
func (e *Endpoint) covers(org string) bool {
	return len(e.Organizations) == 0 || slices.Contains(e.Organizations, org)
}

// same reports whether two configurations of one endpoint send the same
// requests to the same events, so running workers can be kept.
func (e *Endpoint) same(o *Endpoint) bool {
	return e.ID == o.ID && e.URL == o.URL && e.Secret.Equal(o.Secret) && e.WorkOS == o.WorkOS &&
		slices.Equal(e.Organizations, o.Organizations)
}

// normalize fills the default ID and validates eps as a whole.
func normalize(eps []Endpoint) ([]Endpoint, error) {
	out := make([]Endpoint, len(eps))
	seen := map[string]bool{}
	for i, e := range eps {
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook %d: url %q: %w: want an absolute http or https URL", i+1, e.URL, ErrBadEndpoint)
		}
		if e.Secret.IsZero() {
			return nil, fmt.Errorf("webhook %d (%s): %w: no secret", i+1, e.URL, ErrBadEndpoint)
		}
		if e.ID == "" {
			e.ID = DefaultEndpointID(e.URL)
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("webhook %d (%s): %w: id %s used twice", i+1, e.URL, ErrBadEndpoint, e.ID)
		}
		seen[e.ID] = true
		e.Organizations = slices.Clone(e.Organizations)
		slices.Sort(e.Organizations)
		out[i] = e
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out, nil
}

// disable marks e disabled (SPEC §7: 410 Gone) and stops its workers.
func (d *Deliverer) disable(e *endpoint, reason string) {
	if _, err := d.db.SetEndpointDisabled(e.ID, true, reason); err != nil {
		d.log.Error("webhook delivery: disable endpoint", "endpoint", e.ID, "err", err)
	}
	d.log.Error("webhook endpoint disabled", "endpoint", e.ID, "reason", reason)
	d.mu.Lock()
	defer d.mu.Unlock()
	e.disabled = true
	for k, w := range d.workers {
		if w.ep == e {
			d.retireLocked(k, w)
		}
	}
}

// enable re-enables endpoint id after a successful redelivery.
func (d *Deliverer) enable(id string) {
	if _, err := d.db.SetEndpointDisabled(id, false, ""); err != nil {
		d.log.Error("webhook delivery: enable endpoint", "endpoint", id, "err", err)
		return
	}
	d.mu.Lock()
	if e := d.endpoints[id]; e != nil {
		e.disabled = false
	}
	d.wakeAll = true
	d.mu.Unlock()
	d.signal()
	d.log.Info("webhook endpoint enabled again", "endpoint", id)
}

// refreshEndpoints reads whether each endpoint is disabled from the
// store: another instance of a fleet may have disabled one (410 Gone) or
// enabled it again (a redelivery).
func (d *Deliverer) refreshEndpoints(eps []*endpoint) {
	for _, e := range eps {
		st, err := d.db.Endpoint(e.ID)
		if err != nil {
			d.log.Error("webhook delivery: read endpoint", "endpoint", e.ID, "err", err)
			continue
		}
		d.mu.Lock()
		changed := e.disabled != st.Disabled
		e.disabled = st.Disabled
		if changed && st.Disabled {
			for k, w := range d.workers {
				if w.ep == e {
					d.retireLocked(k, w)
				}
			}
		}
		d.mu.Unlock()
		if changed {
			d.log.Info("webhook endpoint state changed in the store", "endpoint", e.ID, "enabled", !st.Disabled)
		}
	}
}
