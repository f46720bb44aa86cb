package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rosterd/rosterd/state"
)

// Several instances of a fleet share one store and one folder (SPEC §11):
// an organization's batches run on one of them at a time, in order, the
// one whose loop holds the organization's batch lease
// (state.BatchLease). A loop takes the lease when it has work (files
// noted, batches to resume or retry, a wake from another instance) and
// before it touches a batch; it keeps the lease beside the work
// (state.KeepLease), and while the settle window or a retry makes it
// wait, and gives it up when it is idle. A loop that finds the lease held
// elsewhere leaves the organization to the holder and tries again a
// lease's time to live later: by then the holder is idle and has given
// the lease up, or it died and its lease has expired. A loop that loses
// its lease (renewals refused, or failing for a TTL) stops its batch at
// once (its context is cancelled; a fenced store refuses its writes from
// the takeover on anyway) and forgets its work in progress, which the new
// holder redoes: on every acquisition a loop reads the organization's
// unfinished batches from the store, those another instance recorded
// and did not finish included. On a bbolt store the leases are the one
// process's, in memory and always granted: the loops take them the same
// way.

// Leases are the lease operations the pipeline needs: state.DB's and the
// PostgreSQL store's.
type Leases interface {
	AcquireLease(name string, ttl time.Duration) (state.Lease, error)
	RenewLease(l state.Lease, ttl time.Duration) (state.Lease, error)
	ReleaseLease(l state.Lease) error
}

// DefaultLeaseTTL is Config.LeaseTTL's default.
const DefaultLeaseTTL = 30 * time.Second

// ErrLeaseElsewhere is returned by Approve when another instance runs the
// organization's batches at the moment.
var ErrLeaseElsewhere = errors.New("another instance is running this organization's batches; try again in a moment")

// leaseConfig fills in Config.Leases (the store's own, when it has them)
// and Config.LeaseTTL.
func leaseConfig(cfg Config) Config {
	if cfg.Leases == nil {
		if ls, ok := any(cfg.DB).(Leases); ok {
			cfg.Leases = ls
		}
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	return cfg
}

// loopLease is the batch lease a loop holds, kept by KeepLease in a
// goroutine of its own until stop.
type loopLease struct {
	lease state.Lease
	ctx   context.Context // the work under the lease; ends when it is lost
	stop  context.CancelFunc
	kept  chan error // KeepLease's return
}

// hasWork reports whether the loop has something that needs the lease.
// Called by run.
func (l *orgLoop) hasWork() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending) > 0 || len(l.resume) > 0 || l.waiting != nil || l.check || len(l.forget) > 0
}

// forgetLater hands the loop completion records to drop, a write it makes
// under the lease.
func (l *orgLoop) forgetLater(names []string) {
	l.mu.Lock()
	l.forget = append(l.forget, names...)
	l.mu.Unlock()
	l.poke()
}

// forgetNow drops the completion records handed to the loop; it holds the
// lease.
func (l *orgLoop) forgetNow() {
	l.mu.Lock()
	names := l.forget
	l.forget = nil
	l.mu.Unlock()
	if len(names) == 0 {
		return
	}
	if err := l.p.db.ForgetCompletions(l.org, names); err != nil {
		l.p.log.Warn("forget completions", "org", l.org, "err", err)
	}
}

// leased is run's lease hook, called before it looks for work: it returns
// the context to work in and true while the loop holds the lease,
// acquiring it when there is work; false when there is none (wait 0: until
// woken), or when the lease is held elsewhere (wait: until trying again).
// It gives the lease up when the loop is idle, and notices its loss.
func (l *orgLoop) leased(ctx context.Context) (context.Context, time.Duration, bool) {
	ls := l.p.cfg.Leases
	if ls == nil {
		l.forgetNow()
		return ctx, 0, true
	}
	if h := l.lease; h != nil {
		select {
		case err := <-h.kept:
			l.lease = nil
			if ctx.Err() != nil {
				return ctx, 0, false
			}
			l.p.log.Warn("batch lease lost; another instance runs the organization's batches", "org", l.org, "err", err)
			// The new holder redoes what was in progress here.
			l.mu.Lock()
			l.resume = nil
			l.mu.Unlock()
			l.waiting = nil
		default:
			// Holding the lease, this loop is the one that runs the
			// organization's batches: a wake has nothing to add.
			l.mu.Lock()
			l.check = false
			l.mu.Unlock()
			l.forgetNow()
			if l.hasWork() {
				return h.ctx, 0, true
			}
			l.release()
			return ctx, 0, false
		}
	}
	if !l.hasWork() || ctx.Err() != nil {
		return ctx, 0, false
	}
	if l.onlyCheck() {
		// Cleared before the look: a wake that comes meanwhile sets it
		// again.
		l.mu.Lock()
		l.check = false
		l.mu.Unlock()
		bs, err := l.p.orgUnfinished(l.org)
		if err == nil && len(bs) == 0 {
			return ctx, 0, false // nothing another instance left unfinished
		}
		wctx, wait, err := l.acquire(ctx)
		if err != nil {
			l.mu.Lock()
			l.check = true // look again when trying again
			l.mu.Unlock()
		}
		return wctx, wait, err == nil
	}
	wctx, wait, err := l.acquire(ctx)
	return wctx, wait, err == nil
}

// acquire takes the loop's lease (see leased); on failure, the error
// (state.ErrLeaseHeld: another instance holds it) and when to try again.
func (l *orgLoop) acquire(ctx context.Context) (context.Context, time.Duration, error) {
	ls, ttl := l.p.cfg.Leases, l.p.cfg.LeaseTTL
	lease, err := ls.AcquireLease(state.BatchLease(l.org), ttl)
	if err != nil {
		if !errors.Is(err, state.ErrLeaseHeld) {
			l.p.log.Error("acquire batch lease", "org", l.org, "err", err)
		}
		// A little past the TTL: the holder's lease expires at most a TTL
		// after its last renewal, which came before this attempt.
		return ctx, ttl + ttl/8, err
	}
	lctx, cancel := context.WithCancel(ctx)
	h := &loopLease{lease: lease, ctx: lctx, stop: cancel, kept: make(chan error, 1)}
	go func() {
		err := state.KeepLease(lctx, ls, lease, ttl)
		cancel() // the work under the lease stops with it
		h.kept <- err
		l.poke()
	}()
	l.lease = h
	// What the store says is unfinished: the batches another instance
	// recorded and did not finish, besides those found at start-up.
	bs, err := l.p.orgUnfinished(l.org)
	if err != nil {
		l.p.log.Error("list unfinished batches", "org", l.org, "err", err)
	}
	l.mu.Lock()
	l.check = false
	for _, b := range bs {
		if !slices.ContainsFunc(l.resume, func(r state.Batch) bool { return r.ID == b.ID }) {
			l.resume = append(l.resume, b)
		}
	}
	slices.SortFunc(l.resume, func(a, b state.Batch) int { return strings.Compare(a.ID, b.ID) })
	l.mu.Unlock()
	l.forgetNow()
	return lctx, 0, nil
}

// leaseLost stops keeping the loop's lease when the store refused a write
// under it (state.ErrLeaseLost): leased then treats it as lost.
func (l *orgLoop) leaseLost() {
	if h := l.lease; h != nil {
		h.stop()
	}
}

// onlyCheck reports whether the loop's only work is a wake from another
// instance's batch.
func (l *orgLoop) onlyCheck() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check && len(l.pending) == 0 && len(l.resume) == 0 && l.waiting == nil && len(l.forget) == 0
}

// release stops keeping the loop's lease and gives it up (a lost lease is
// another instance's: it is left alone).
func (l *orgLoop) release() {
	h := l.lease
	if h == nil {
		return
	}
	l.lease = nil
	h.stop()
	if err := <-h.kept; errors.Is(err, state.ErrLeaseLost) {
		return
	}
	if err := l.p.cfg.Leases.ReleaseLease(h.lease); err != nil {
		l.p.log.Error("release batch lease", "org", l.org, "err", err)
	}
}

// approve runs an approval under the lease, taking it for the approval
// when the loop does not hold it; ErrLeaseElsewhere when another instance
// does, the store's error when the lease could not be asked for.
// The approved batch runs in the lease's context, as run's batches do:
// it stops when the lease is lost.
func (l *orgLoop) approve(ctx context.Context, req approveReq) (state.Batch, error) {
	wctx := ctx
	if l.p.cfg.Leases != nil {
		if l.lease == nil {
			var err error
			if wctx, _, err = l.acquire(ctx); errors.Is(err, state.ErrLeaseHeld) {
				return state.Batch{}, fmt.Errorf("approve batch %s: %w", req.batch, ErrLeaseElsewhere)
			} else if err != nil {
				return state.Batch{}, fmt.Errorf("approve batch %s: batch lease: %w", req.batch, err)
			}
		} else {
			wctx = l.lease.ctx
		}
		if wctx.Err() != nil && ctx.Err() == nil {
			// Lost, and leased has not noticed yet.
			return state.Batch{}, fmt.Errorf("approve batch %s: %w", req.batch, ErrLeaseElsewhere)
		}
	}
	b, err := l.p.approveInLoop(wctx, l, req.batch)
	if errors.Is(err, state.ErrLeaseLost) {
		l.leaseLost()
	}
	return b, err
}

// orgUnfinished returns org's unfinished batches (pending, processing)
// newer than its newest batch with an outcome, oldest first: those a
// holder must finish. Older ones were superseded by the start-up of an
// instance (order.go).
func (p *Pipeline) orgUnfinished(org string) ([]state.Batch, error) {
	var out []state.Batch
	for after := ""; ; {
		page, err := p.db.Batches(org, after, 50)
		if errors.Is(err, state.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, b := range page {
			switch b.Status {
			case state.BatchPending, state.BatchProcessing:
				out = append(out, b)
			case state.BatchSuperseded, state.BatchIgnored:
			default:
				slices.Reverse(out)
				return out, nil
			}
		}
		if len(page) < 50 {
			slices.Reverse(out)
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// Wake tells the pipeline that another instance of a fleet recorded a
// batch of org (a notification of the store): its loop looks at the
// organization's unfinished batches and, if there are any, runs them
// once it gets the lease. An org of "" (the store's notifications were
// lost, or polling) wakes every organization with unfinished batches.
func (p *Pipeline) Wake(org string) {
	orgs := []string{org}
	if org == "" {
		bs, err := p.db.UnfinishedBatches()
		if err != nil {
			p.log.Error("list unfinished batches", "err", err)
			return
		}
		orgs = orgs[:0]
		for _, b := range bs {
			if !slices.Contains(orgs, b.Org) {
				orgs = append(orgs, b.Org)
			}
		}
	}
	for _, o := range orgs {
		l := p.loop(o)
		l.mu.Lock()
		l.check = true
		l.mu.Unlock()
		l.poke()
	}
}
