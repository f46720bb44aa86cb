package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/rosterd/rosterd/state"
)

// Several instances of a fleet share one store and deliver the same
// events (SPEC §11). Each (endpoint, organization) is delivered by one of
// them at a time, in order: the instance whose worker holds its delivery
// lease (state.DeliveryLease). A worker takes the lease when it finds
// events to send, keeps it beside the work (state.KeepLease) and stops
// when it is lost; before it gives the lease up it writes its position,
// so that the next holder resumes there. A worker that finds the lease
// held elsewhere leaves the events to the holder and wakes its
// organization again after a lease's time to live: when the holder has
// died by then, its lease has expired and this instance takes over. On a
// bbolt store the leases are the one process's and always granted.

// heldLease is a delivery lease a worker holds, renewed by KeepLease in
// a goroutine of its own until stop.
type heldLease struct {
	lease state.Lease
	stop  context.CancelFunc
	kept  chan error // KeepLease's return
}

// acquire takes k's delivery lease and starts keeping it. It returns the
// lease and a context that ends when the lease is lost (or ctx ends), or
// nil when the lease is held elsewhere or the store failed; then it has
// scheduled a wake of k's organization.
func (d *Deliverer) acquire(ctx context.Context, k wkey) (*heldLease, context.Context) {
	l, err := d.db.AcquireLease(state.DeliveryLease(k.endpoint, k.org), d.leaseTTL)
	if err != nil {
		if !errors.Is(err, state.ErrLeaseHeld) {
			d.log.Error("webhook delivery: acquire lease", "endpoint", k.endpoint, "org", k.org, "err", err)
		}
		d.wakeLater(k.org)
		return nil, ctx
	}
	lctx, cancel := context.WithCancel(ctx)
	h := &heldLease{lease: l, stop: cancel, kept: make(chan error, 1)}
	go func() {
		err := state.KeepLease(lctx, d.db, l, d.leaseTTL)
		cancel() // the work under the lease stops with it
		h.kept <- err
	}()
	return h, lctx
}

// release writes k's position, stops keeping h and gives it up. A lost
// lease is not given up: it is another instance's.
func (d *Deliverer) release(h *heldLease, k wkey) {
	if h == nil {
		return
	}
	flushErr := d.flushKey(k)
	h.stop()
	if err := <-h.kept; errors.Is(err, state.ErrLeaseLost) {
		d.log.Warn("webhook delivery lease lost; another instance goes on", "endpoint", k.endpoint, "org", k.org, "err", err)
		return
	}
	if flushErr != nil {
		d.log.Error("webhook delivery: save cursor", "endpoint", k.endpoint, "org", k.org, "err", flushErr)
	}
	if err := d.db.ReleaseLease(h.lease); err != nil {
		d.log.Error("webhook delivery: release lease", "endpoint", k.endpoint, "org", k.org, "err", err)
	}
}

// flushKey writes k's position as known in memory, whether or not the
// flusher has it in hand: it is the last write under the lease.
func (d *Deliverer) flushKey(k wkey) error {
	d.cmu.Lock()
	c, ok := d.cursors[k]
	delete(d.dirty, k)
	d.cmu.Unlock()
	if !ok {
		return nil
	}
	return d.db.SaveCursors(state.CursorUpdate{Endpoint: k.endpoint, Org: k.org, Cursor: c})
}

// wakeLater wakes org's workers once a lease's time to live from now,
// unless a wake is scheduled already.
func (d *Deliverer) wakeLater(org string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.later[org] {
		return
	}
	d.later[org] = true
	// A little past the TTL: the holder's lease expires at most a TTL
	// after its last renewal, which came before this attempt.
	time.AfterFunc(d.leaseTTL+d.leaseTTL/8, func() {
		d.mu.Lock()
		delete(d.later, org)
		d.mu.Unlock()
		d.Wake(org)
	})
}
