package webhook

import (
	"errors"

	"github.com/rosterd/rosterd/state"
)

// cursor returns where k resumes: the stored cursor, or the position in
// memory when that is ahead (not yet flushed).
func (d *Deliverer) cursor(k wkey) (state.Cursor, error) {
	c, err := d.db.Cursor(k.endpoint, k.org)
	if err != nil {
		return state.Cursor{}, err
	}
	d.cmu.Lock()
	defer d.cmu.Unlock()
	if m, ok := d.cursors[k]; ok && m.After > c.After {
		c = m
	}
	if c.Retry != nil && c.Retry.EventID <= c.After {
		c.Retry = nil
	}
	return c, nil
}

// remember records k's position in memory (already written to the store).
func (d *Deliverer) remember(k wkey, c state.Cursor) {
	d.cmu.Lock()
	if old, ok := d.cursors[k]; !ok || c.After >= old.After {
		d.cursors[k] = c
	}
	d.cmu.Unlock()
}

// advance records k's position in memory and has the flusher write it:
// cursors of delivered events are written in groups, one transaction
// (one fsync) for whatever was delivered meanwhile. A crash loses at most
// the positions not yet written, whose events are then sent again (at
// least once).
func (d *Deliverer) advance(k wkey, c state.Cursor) {
	d.cmu.Lock()
	d.cursors[k] = c
	d.dirty[k] = true
	d.cmu.Unlock()
	select {
	case d.flushCh <- struct{}{}:
	default:
	}
}

func (d *Deliverer) flusher(stop <-chan struct{}) {
	for {
		select {
		case <-d.flushCh:
			d.flush()
		case <-stop:
			d.flush()
			return
		}
	}
}

func (d *Deliverer) flush() {
	d.cmu.Lock()
	ups := make([]state.CursorUpdate, 0, len(d.dirty))
	for k := range d.dirty {
		ups = append(ups, state.CursorUpdate{Endpoint: k.endpoint, Org: k.org, Cursor: d.cursors[k]})
	}
	clear(d.dirty)
	d.cmu.Unlock()
	err := d.db.SaveCursors(ups...)
	if errors.Is(err, state.ErrLeaseLost) {
		// Another instance holds one of these leases now and owns that
		// cursor (a worker that gave its lease up wrote its position
		// first; one that lost it leaves the rest to be sent again):
		// write the others alone.
		var again []state.CursorUpdate
		err = nil
		for _, u := range ups {
			if e := d.db.SaveCursors(u); e != nil && !errors.Is(e, state.ErrLeaseLost) {
				again, err = append(again, u), e
			}
		}
		ups = again
	}
	if err != nil {
		d.log.Error("webhook delivery: save cursors", "err", err)
		d.cmu.Lock()
		for _, u := range ups {
			d.dirty[wkey{u.Endpoint, u.Org}] = true
		}
		d.cmu.Unlock()
	}
}
