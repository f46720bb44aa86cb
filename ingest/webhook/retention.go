package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/rosterd/rosterd/state"
)

// retentionLoop purges old events now and then every purgeEach until ctx
// ends.
func (d *Deliverer) retentionLoop(ctx context.Context) {
	t := time.NewTicker(d.purgeEach)
	defer t.Stop()
	for {
		if _, err := d.Purge(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("event retention", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Purge deletes the events older than the retention that every endpoint
// covering their organization has delivered or failed (SPEC §7), in small
// transactions, and returns how many it deleted. It reads the cursors as
// written to the store, which never run ahead of delivery, so an event is
// never purged before its endpoints are done with it. Disabled endpoints
// hold their events back too.
//
// In a fleet one instance purges at a time: Purge runs under the
// retention lease (state.RetentionLease) and does nothing (0, nil) while
// another instance holds it. The purge needs no fencing: each of its
// transactions deletes what the cursors it read allow, and cursors only
// move forward, so a purge cut short or run twice deletes nothing early.
func (d *Deliverer) Purge(ctx context.Context) (int, error) {
	if d.opt().retention < 0 {
		return 0, nil
	}
	l, err := d.db.AcquireLease(state.RetentionLease, d.leaseTTL)
	if errors.Is(err, state.ErrLeaseHeld) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pctx, cancel := context.WithCancel(ctx)
	kept := make(chan error, 1)
	go func() {
		err := state.KeepLease(pctx, d.db, l, d.leaseTTL)
		cancel() // the purge stops with the lease
		kept <- err
	}()
	n, err := d.purge(pctx)
	cancel()
	if lerr := <-kept; errors.Is(lerr, state.ErrLeaseLost) {
		return n, errors.Join(err, lerr)
	}
	if rerr := d.db.ReleaseLease(l); rerr != nil {
		return n, errors.Join(err, rerr)
	}
	return n, err
}

// purge is Purge's work, under the lease.
func (d *Deliverer) purge(ctx context.Context) (int, error) {
	d.mu.Lock()
	eps := make([]*endpoint, 0, len(d.endpoints))
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	d.mu.Unlock()
	type epCursors struct {
		e  *endpoint
		cs map[string]state.Cursor
	}
	all := make([]epCursors, 0, len(eps))
	for _, e := range eps {
		cs, err := d.db.Cursors(e.ID)
		if err != nil {
			return 0, err
		}
		all = append(all, epCursors{e, cs})
	}
	keepAfter := func(org string) (string, bool) {
		after, ok := "", false
		for _, ec := range all {
			if !ec.e.covers(org) {
				continue
			}
			c, has := ec.cs[org]
			pos := ec.e.start
			if has {
				pos = c.After
			}
			if !ok || pos < after {
				after, ok = pos, true
			}
		}
		return after, ok
	}
	n, err := d.db.PurgeEvents(ctx, d.now().Add(-d.opt().retention), keepAfter)
	if n > 0 {
		d.log.Info("event retention purged old events", "events", n)
	}
	return n, err
}
