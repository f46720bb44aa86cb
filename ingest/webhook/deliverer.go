package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterd/rosterd/state"
)

// DefaultSchedule is the SPEC §7 retry schedule: the delays before the
// second to the tenth attempt, about three days in all.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

const (
	// DefaultTimeout bounds one delivery attempt (SPEC §7).
	DefaultTimeout = 10 * time.Second
	// DefaultRetention is how long events stay in the feed (SPEC §7).
	DefaultRetention = 30 * 24 * time.Hour
	// pageSize is how many events a worker reads per transaction.
	pageSize = 256
	// DefaultLeaseTTL is Config.LeaseTTL's default.
	DefaultLeaseTTL = 30 * time.Second
)

// Config configures a Deliverer. A zero field means the documented
// default; DB is required.
type Config struct {
	DB        Store
	Endpoints []Endpoint
	// Timeout bounds one attempt, connection to last response byte; 0
	// means DefaultTimeout.
	Timeout time.Duration
	// Schedule is the delay before each retry, jittered by ±20 %; after
	// the last one the event is marked failed. nil means DefaultSchedule.
	Schedule []time.Duration
	// Retention is how long events stay in the feed; 0 means
	// DefaultRetention, negative keeps them forever.
	Retention time.Duration
	// RetentionEvery is how often the purge runs; 0 means an hour.
	RetentionEvery time.Duration
	// LeaseTTL is how long the lease on an (endpoint, organization)'s
	// delivery, and on the retention purge, lasts without a renewal
	// (state.DeliveryLease, state.RetentionLease): in a fleet, how long
	// another instance waits before it takes over the work of one that
	// died. The holder renews it every third of it. 0 means
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	Logger   *slog.Logger
	// Registerer receives the delivery metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Deliverer sends events to webhook endpoints: one worker goroutine per
// (endpoint, organization) with events pending, strictly in event order.
// Its methods are safe for concurrent use.
type Deliverer struct {
	db        Store
	log       *slog.Logger
	opts      atomic.Pointer[options]
	purgeEach time.Duration
	leaseTTL  time.Duration
	metrics   *metrics
	now       func() time.Time

	wakeCh chan struct{} // cap 1: something in wake* changed

	mu        sync.Mutex
	endpoints map[string]*endpoint // by id
	workers   map[wkey]*worker
	retiring  map[wkey]chan struct{} // done channels of workers that were cancelled or exited
	wakeOrgs  map[string]bool
	wakeAll   bool
	later     map[string]bool // organizations with a wake scheduled (wakeLater)
	running   bool
	wg        sync.WaitGroup

	cmu     sync.Mutex
	cursors map[wkey]state.Cursor // latest position known in memory, ahead of bbolt
	dirty   map[wkey]bool         // positions not yet written
	flushCh chan struct{}         // cap 1
}

// endpoint is a configured Endpoint with its stored state.
type endpoint struct {
	Endpoint
	start    string // state.EndpointState.Start
	disabled bool
}

type wkey struct{ endpoint, org string }

// worker delivers one organization's events to one endpoint.
type worker struct {
	ep     *endpoint
	org    string
	more   bool // guarded by Deliverer.mu: a Wake came in since the last read
	cancel context.CancelFunc
	prev   chan struct{} // a cancelled predecessor to wait for
	done   chan struct{}

	head time.Time // guarded by Deliverer.mu: creation time of the event being sent, zero when idle
}

// New validates cfg and returns a Deliverer. It registers the endpoints
// in the store: an endpoint seen for the first time starts after the
// current last event.
func New(cfg Config) (*Deliverer, error) {
	if cfg.DB == nil {
		return nil, errors.New("new deliverer: no DB")
	}
	d := &Deliverer{
		db:        cfg.DB,
		log:       cfg.Logger,
		purgeEach: cfg.RetentionEvery,
		leaseTTL:  cfg.LeaseTTL,
		now:       time.Now,
		wakeCh:    make(chan struct{}, 1),
		endpoints: map[string]*endpoint{},
		workers:   map[wkey]*worker{},
		retiring:  map[wkey]chan struct{}{},
		wakeOrgs:  map[string]bool{},
		later:     map[string]bool{},
		cursors:   map[wkey]state.Cursor{},
		dirty:     map[wkey]bool{},
		flushCh:   make(chan struct{}, 1),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.setOptions(cfg)
	if d.purgeEach <= 0 {
		d.purgeEach = time.Hour
	}
	if d.leaseTTL <= 0 {
		d.leaseTTL = DefaultLeaseTTL
	}
	d.metrics = newMetrics(d)
	if cfg.Registerer != nil {
		if err := d.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("new deliverer: %w", err)
		}
	}
	if err := d.SetEndpoints(cfg.Endpoints); err != nil {
		return nil, fmt.Errorf("new deliverer: %w", err)
	}
	return d, nil
}

// options are the settings a reload can change, swapped as a whole.
type options struct {
	timeout   time.Duration
	client    *http.Client
	schedule  []time.Duration
	retention time.Duration
}

func (d *Deliverer) opt() *options { return d.opts.Load() }

// setOptions applies cfg's Timeout, Schedule and Retention with their
// defaults. A new timeout gets a new client; the old one's idle
// connections are closed.
func (d *Deliverer) setOptions(cfg Config) {
	o := &options{timeout: cfg.Timeout, schedule: slices.Clone(cfg.Schedule), retention: cfg.Retention}
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	if o.schedule == nil {
		o.schedule = DefaultSchedule
	}
	if o.retention == 0 {
		o.retention = DefaultRetention
	}
	old := d.opts.Load()
	if old != nil && old.timeout == o.timeout {
		o.client = old.client
	} else {
		o.client = newClient(o.timeout)
		if old != nil {
			old.client.CloseIdleConnections()
		}
	}
	d.opts.Store(o)
}

// Reconfigure applies a reloaded configuration (SIGHUP): Endpoints as
// SetEndpoints does, and Timeout, Schedule and Retention from the next
// attempt, retry wait or purge on (a wait already started keeps its
// length). DB, Logger, Registerer and RetentionEvery are kept.
func (d *Deliverer) Reconfigure(cfg Config) error {
	if err := d.SetEndpoints(cfg.Endpoints); err != nil {
		return err
	}
	d.setOptions(cfg)
	return nil
}

// SetEndpoints replaces the endpoints (SIGHUP reload). Workers of an
// unchanged endpoint keep running; those of a removed or changed one are
// stopped (an event in flight may then be sent again) and a changed one
// resumes from its cursor. A disabled endpoint whose URL changed is
// enabled again: the operator fixed the address.
func (d *Deliverer) SetEndpoints(eps []Endpoint) error {
	eps, err := normalize(eps)
	if err != nil {
		return err
	}
	next := map[string]*endpoint{}
	for _, e := range eps {
		st, err := d.db.RegisterEndpoint(e.ID, e.URL)
		if err != nil {
			return err
		}
		next[e.ID] = &endpoint{Endpoint: e, start: st.Start, disabled: st.Disabled}
	}
	d.mu.Lock()
	for id, old := range d.endpoints {
		if n := next[id]; n != nil && n.same(&old.Endpoint) && n.disabled == old.disabled {
			next[id] = old
		}
	}
	for k, w := range d.workers {
		if next[k.endpoint] != w.ep {
			d.retireLocked(k, w)
		}
	}
	d.endpoints = next
	d.wakeAll = true
	var disabled []string
	for _, e := range eps {
		if next[e.ID].disabled {
			disabled = append(disabled, e.ID)
		}
	}
	d.mu.Unlock()
	d.signal()
	for _, id := range disabled {
		d.log.Warn("webhook endpoint disabled; a successful redelivery enables it again", "endpoint", id)
	}
	return nil
}

// retireLocked cancels w and remembers it until it exits, so that its
// successor for the same key never sends concurrently.
func (d *Deliverer) retireLocked(k wkey, w *worker) {
	w.cancel()
	delete(d.workers, k)
	d.retiring[k] = w.done
}

// Wake tells the Deliverer that events of org were committed. It never
// blocks. org "" wakes every organization.
func (d *Deliverer) Wake(org string) {
	d.mu.Lock()
	if org == "" {
		d.wakeAll = true
	} else {
		d.wakeOrgs[org] = true
	}
	d.mu.Unlock()
	d.signal()
}

func (d *Deliverer) signal() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: it starts a worker for every (endpoint,
// organization) with pending events, then one more per Wake that finds
// none running; an idle Deliverer runs no timer but the retention purge's.
// On return every worker has stopped and every cursor known in memory is
// written. Run returns nil when ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("deliverer: already running")
	}
	d.running, d.wakeAll = true, true
	d.mu.Unlock()
	d.signal()

	flushStop, flushDone := make(chan struct{}), make(chan struct{})
	go func() { d.flusher(flushStop); close(flushDone) }()
	purgeDone := make(chan struct{})
	go func() { d.retentionLoop(ctx); close(purgeDone) }()

	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for k, w := range d.workers {
				d.retireLocked(k, w)
			}
			d.mu.Unlock()
			d.wg.Wait()
			close(flushStop)
			<-flushDone
			<-purgeDone
			d.mu.Lock()
			d.running = false
			clear(d.retiring)
			d.mu.Unlock()
			return nil
		case <-d.wakeCh:
			d.dispatch(ctx)
		}
	}
}

// dispatch starts or nudges the workers the pending wakes call for.
func (d *Deliverer) dispatch(ctx context.Context) {
	d.mu.Lock()
	all, orgs := d.wakeAll, d.wakeOrgs
	d.wakeAll, d.wakeOrgs = false, map[string]bool{}
	eps := make([]*endpoint, 0, len(d.endpoints))
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	d.mu.Unlock()
	if all {
		d.refreshEndpoints(eps)
		known, err := d.knownOrgs(eps)
		if err != nil {
			d.log.Error("webhook delivery: list organizations", "err", err)
		}
		for _, o := range known {
			orgs[o] = true
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for org := range orgs {
		for _, e := range eps {
			if e.disabled || !e.covers(org) || d.endpoints[e.ID] != e {
				continue
			}
			d.startLocked(ctx, e, org)
		}
	}
}

// knownOrgs lists the organizations that may have pending events: every
// organization, and every one an endpoint has a cursor for (events of a
// removed organization are still delivered).
func (d *Deliverer) knownOrgs(eps []*endpoint) ([]string, error) {
	set := map[string]bool{}
	orgs, err := d.db.Orgs("", 0)
	if err != nil {
		return nil, err
	}
	for _, o := range orgs {
		set[o.Name] = true
	}
	for _, e := range eps {
		cs, err := d.db.Cursors(e.ID)
		if err != nil {
			return nil, err
		}
		for o := range cs {
			set[o] = true
		}
	}
	out := make([]string, 0, len(set))
	for o := range set {
		out = append(out, o)
	}
	slices.Sort(out)
	return out, nil
}

// startLocked starts the worker for (e, org), or tells the running one to
// read again before it exits.
func (d *Deliverer) startLocked(ctx context.Context, e *endpoint, org string) {
	k := wkey{e.ID, org}
	if w := d.workers[k]; w != nil {
		w.more = true
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{ep: e, org: org, cancel: cancel, prev: d.retiring[k], done: make(chan struct{})}
	delete(d.retiring, k)
	d.workers[k] = w
	d.wg.Add(1)
	go d.work(wctx, w)
}

// work is one worker's life: read the pending events in pages, deliver
// each in turn, exit when a read finds nothing and no Wake came since.
// It delivers under the (endpoint, organization)'s delivery lease, taken
// when the first read finds events (an idle worker takes none) and kept
// beside the work; when the lease is lost the work stops, and when
// another instance holds it the worker leaves the events to that one
// (SPEC §11).
func (d *Deliverer) work(ctx context.Context, w *worker) {
	k := wkey{w.ep.ID, w.org}
	defer d.wg.Done()
	defer close(w.done)
	defer w.cancel()
	defer func() {
		d.mu.Lock()
		if d.workers[k] == w {
			delete(d.workers, k)
			d.retiring[k] = w.done
		}
		d.mu.Unlock()
	}()
	if w.prev != nil {
		select {
		case <-w.prev:
		case <-ctx.Done():
			return
		}
	}
	var held *heldLease
	defer func() { d.release(held, k) }() // before done: a successor waits for it
	cur, err := d.cursor(k)
	if err != nil {
		d.log.Error("webhook delivery: read cursor", "endpoint", k.endpoint, "org", k.org, "err", err)
		return
	}
	for {
		d.mu.Lock()
		w.more = false
		d.mu.Unlock()
		evs, err := d.page(w.org, cur.After)
		if err != nil {
			d.log.Error("webhook delivery: read events", "endpoint", k.endpoint, "org", k.org, "err", err)
			return
		}
		if len(evs) == 0 {
			d.mu.Lock()
			if w.more {
				d.mu.Unlock()
				continue
			}
			if d.workers[k] == w {
				delete(d.workers, k)
				d.retiring[k] = w.done
			}
			w.head = time.Time{}
			d.mu.Unlock()
			return
		}
		if held == nil {
			if held, ctx = d.acquire(ctx, k); held == nil {
				return
			}
			// Under the lease the stored cursor is the truth: another
			// instance may have delivered since the first read.
			if cur, err = d.cursor(k); err != nil {
				d.log.Error("webhook delivery: read cursor", "endpoint", k.endpoint, "org", k.org, "err", err)
				return
			}
			continue
		}
		for _, ev := range evs {
			if !d.deliver(ctx, w, &cur, ev) {
				return
			}
		}
	}
}

// deliver sends ev until it is delivered or failed, moving cur past it,
// and reports whether the worker goes on (false: stopped or disabled).
func (d *Deliverer) deliver(ctx context.Context, w *worker, cur *state.Cursor, ev event) bool {
	k := wkey{w.ep.ID, w.org}
	ep := &w.ep.Endpoint
	d.mu.Lock()
	w.head = ev.created
	d.mu.Unlock()
	var attempts int
	var next time.Time
	if r := cur.Retry; r != nil && r.EventID == ev.id {
		attempts, next = r.Attempts, r.NextAt
	}
	for {
		if wait := next.Sub(d.now()); !next.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return false
			}
		}
		res := d.send(ctx, ep, ev.id, ev.body)
		if ctx.Err() != nil && !res.ok() {
			return false // stopping: the attempt does not count, the event goes again
		}
		attempts++
		switch {
		case res.ok():
			// The cursor moves before the counter, so whoever sees the
			// counter also sees the cursor past the event.
			*cur = state.Cursor{After: ev.id}
			d.advance(k, *cur)
			d.metrics.outcome(k.endpoint, "delivered")
			d.metrics.lag(k.endpoint, d.now().Sub(ev.created))
			return true
		case res.gone():
			d.metrics.outcome(k.endpoint, "gone")
			d.disable(w.ep, fmt.Sprintf("receiver answered 410 Gone to event %s", ev.id))
			return false
		case attempts > len(d.opt().schedule):
			d.metrics.outcome(k.endpoint, "failed")
			f := state.FailedDelivery{Endpoint: k.endpoint, EventID: ev.id, Event: ev.typ(), Org: w.org,
				Attempts: attempts, LastStatus: res.status, LastError: res.err.Error(), FailedAt: d.now().UTC()}
			if err := d.db.MarkFailed(f); err != nil {
				d.log.Error("webhook delivery: mark failed", "endpoint", k.endpoint, "org", k.org, "event", ev.id, "err", err)
				return false
			}
			d.log.Error("webhook event failed after the last retry", "endpoint", k.endpoint, "org", k.org, "event", ev.id,
				"attempts", attempts, "status", res.status, "err", res.err)
			*cur = state.Cursor{After: ev.id}
			d.remember(k, *cur)
			return true
		default:
			d.metrics.outcome(k.endpoint, "retry")
			schedule := d.opt().schedule
			delay := jitter(schedule[min(attempts, len(schedule))-1])
			if res.retryAfter > 0 {
				delay = res.retryAfter
			}
			next = d.now().Add(delay)
			cur.Retry = &state.Retry{EventID: ev.id, Attempts: attempts, NextAt: next.UTC(), LastStatus: res.status, LastError: res.err.Error()}
			if err := d.db.SaveCursors(state.CursorUpdate{Endpoint: k.endpoint, Org: k.org, Cursor: *cur}); err != nil {
				d.log.Error("webhook delivery: save retry state", "endpoint", k.endpoint, "org", k.org, "event", ev.id, "err", err)
			}
			d.remember(k, *cur)
			d.log.Warn("webhook delivery failed; will retry", "endpoint", k.endpoint, "org", k.org, "event", ev.id,
				"attempt", attempts, "status", res.status, "retry_in", delay.Round(time.Millisecond), "err", res.err)
		}
	}
}

// event is one stored event as sent: its id, its JSON body exactly as
// stored, and its creation time (from the id's ULID timestamp).
type event struct {
	id      string
	body    []byte
	created time.Time
}

// typ decodes the event's type, for the failed list.
func (e event) typ() string {
	var h struct {
		Event string `json:"event"`
	}
	json.Unmarshal(e.body, &h)
	return h.Event
}

// page reads up to pageSize events of org after after.
func (d *Deliverer) page(org, after string) ([]event, error) {
	var out []event
	err := d.db.ForEachEventJSON(org, after, pageSize, func(id string, raw []byte) error {
		out = append(out, event{id: id, body: bytes.Clone(raw), created: idTime(id)})
		return nil
	})
	return out, err
}

// idTime returns the time in an event id ("evt_" + ULID), zero if the id
// is not one.
func idTime(id string) time.Time {
	u, err := ulid.ParseStrict(strings.TrimPrefix(id, "evt_"))
	if err != nil {
		return time.Time{}
	}
	return ulid.Time(u.Time())
}
