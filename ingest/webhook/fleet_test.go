package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// The fleet tests run several Deliverers, each on its own connection
// pool to one PostgreSQL database as a rosterd instance would (named,
// fenced, woken by its own Listener), against one real HTTP receiver
// (SPEC §11).

// openPG opens the store at url as instance.
func openPG(t *testing.T, url, instance string, fenced bool) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: url, Instance: instance, Fenced: fenced})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// instance is one member of a fleet: its store, its Deliverer and the
// Listener that wakes it.
type instance struct {
	name string
	db   *postgres.DB
	d    *Deliverer
	run  func()
	stop func()
}

// newInstance makes instance name on url with cfg (DB set here); start
// runs it.
func newInstance(t *testing.T, url, name string, cfg Config) *instance {
	t.Helper()
	in := &instance{name: name, db: openPG(t, url, name, true)}
	cfg.DB = in.db
	in.d = newDeliverer(t, cfg)
	// A long poll: the notifications wake the deliverers, and the
	// takeover of a dead holder's work does not wait for a poll.
	l := in.db.NewListener(postgres.ListenerConfig{Poll: time.Hour})
	l.Handle(postgres.ChannelEvents, in.d.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	in.run = sync.OnceFunc(func() {
		wg.Go(func() { l.Run(ctx) })
		wg.Go(func() {
			if err := in.d.Run(ctx); err != nil {
				t.Errorf("%s: Run = %v", name, err)
			}
		})
	})
	in.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(in.stop)
	return in
}

func startInstance(t *testing.T, url, name string, cfg Config) *instance {
	t.Helper()
	in := newInstance(t, url, name, cfg)
	in.run()
	return in
}

// kill stops the instance as a crash would for the rest of the fleet: its
// store goes first, so it neither writes its last position nor gives its
// leases up.
func (in *instance) kill() {
	in.db.Close()
	in.stop()
}

// fleetStore returns a store for the test's own writes (unfenced) on a
// new database with the organizations.
func fleetStore(t *testing.T, orgs ...string) (url string, w *postgres.DB) {
	t.Helper()
	url = pgtest.NewDatabase(t)
	w = openPG(t, url, "writer", false)
	for _, o := range orgs {
		if err := w.CreateOrg(state.Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	return url, w
}

var pgBatch atomic.Int64

// commit commits n events of org in one batch, as an apply would, and
// returns their ids.
func commit(t *testing.T, w *postgres.DB, org string, n int) []string {
	t.Helper()
	evs := make([]state.Event, n)
	for i := range evs {
		evs[i] = state.Event{Event: state.EventUserCreated, Data: fmt.Appendf(nil, `{"object":"directory_user","id":"u%d","organization_id":%q}`, i, org)}
	}
	ids, err := w.AppendEvents(org, fmt.Sprintf("B%06d", pgBatch.Add(1)), evs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// overlapGuard counts requests for one organization that arrive while
// another for it is in flight: two instances delivering it at once.
type overlapGuard struct {
	mu       sync.Mutex
	inflight map[string]int
	overlaps int
}

func (g *overlapGuard) enter(org string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight == nil {
		g.inflight = map[string]int{}
	}
	if g.inflight[org]++; g.inflight[org] > 1 {
		g.overlaps++
	}
}

func (g *overlapGuard) leave(org string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight[org]--
}

func (g *overlapGuard) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.overlaps
}

// checkRuns checks that got, one organization's arrivals, delivers want
// at least once, in order and without a gap: runs of consecutive events,
// each starting at or before the event after the furthest one delivered
// so far (a new holder resends what the old one had not recorded). It
// returns how many arrivals were repeats.
func checkRuns(t *testing.T, want, got []string) (repeats int) {
	t.Helper()
	pos := map[string]int{}
	for i, id := range want {
		pos[id] = i
	}
	last, furthest := -1, -1
	for i, id := range got {
		p, ok := pos[id]
		switch {
		case !ok:
			t.Errorf("arrival %d: %s was never committed", i, id)
			continue
		case p != last+1 && p > furthest+1:
			t.Errorf("arrival %d: %s (event %d) after event %d: a gap", i, id, p, furthest)
		}
		if p <= furthest {
			repeats++
		}
		last, furthest = p, max(furthest, p)
	}
	if furthest != len(want)-1 {
		t.Errorf("delivered up to event %d of %d", furthest, len(want))
	}
	return repeats
}

// TestFleetDeliversEachEventOnceInOrder: two instances on one database
// deliver one endpoint's events of two organizations, committed while
// both run, each event once, in order, never two instances one
// organization at once; when one stops, the other goes on from where it
// stopped.
func TestFleetDeliversEachEventOnceInOrder(t *testing.T) {
	url, w := fleetStore(t, "acme", "globex")
	var guard overlapGuard
	rc := newReceiver(t, false, func(_ http.ResponseWriter, _ *http.Request, a arrival, _ int) bool {
		guard.enter(a.Org)
		defer guard.leave(a.Org)
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "hook"
	cfg := Config{Endpoints: []Endpoint{ep}, LeaseTTL: 2 * time.Second}
	a := startInstance(t, url, "a", cfg)
	b := startInstance(t, url, "b", cfg)
	// delivered counts the deliveries the instances have seen answered:
	// the receiver records an arrival before it answers, and an instance
	// stopped in between sends that event again (at least once).
	delivered := func() int {
		n := 0
		for _, in := range []*instance{a, b} {
			n += int(testutil.ToFloat64(in.d.metrics.deliveries.WithLabelValues(ep.ID, "delivered")))
		}
		return n
	}

	want := map[string][]string{}
	total := 0
	commitAll := func(rounds int) {
		for range rounds {
			for _, org := range []string{"acme", "globex"} {
				want[org] = append(want[org], commit(t, w, org, 20)...)
				total += 20
			}
		}
		waitFor(t, fmt.Sprintf("%d deliveries", total), 30*time.Second, func() bool { return delivered() >= total })
	}
	commitAll(5)
	a.stop() // a gives its leases up; b goes on alone
	commitAll(3)
	for _, org := range []string{"acme", "globex"} {
		if diff := cmp.Diff(want[org], rc.ids(org)); diff != "" {
			t.Errorf("arrivals of %s (-want +got):\n%s", org, diff)
		}
		last := want[org][len(want[org])-1]
		waitFor(t, "cursor of "+org+" written", 10*time.Second, func() bool {
			c, err := w.Cursor("hook", org)
			return err == nil && c.After == last
		})
	}
	if n := guard.count(); n != 0 {
		t.Errorf("%d requests arrived while another of the same organization was in flight; want one instance at a time", n)
	}
}

// TestFleetTakesOverFromDeadHolder: the instance delivering an
// organization dies in the middle of a request; once its lease has
// expired the other instance delivers the rest, from the last position
// the dead one wrote: every event arrives, in order, with no gap.
func TestFleetTakesOverFromDeadHolder(t *testing.T) {
	url, w := fleetStore(t, "acme")
	blocked, release := make(chan struct{}), make(chan struct{})
	var requests atomic.Int32
	var guard overlapGuard
	rc := newReceiver(t, false, func(_ http.ResponseWriter, r *http.Request, a arrival, _ int) bool {
		guard.enter(a.Org)
		defer guard.leave(a.Org)
		if requests.Add(1) == 6 {
			close(blocked)
			<-release
			return r.Context().Err() == nil // the sender died: no answer reached it
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "hook"
	ttl := time.Second
	cfg := Config{Endpoints: []Endpoint{ep}, LeaseTTL: ttl}
	fleet := map[string]*instance{"a": startInstance(t, url, "a", cfg), "b": startInstance(t, url, "b", cfg)}
	ids := commit(t, w, "acme", 12)
	select {
	case <-blocked:
	case <-time.After(30 * time.Second):
		t.Fatal("no sixth request")
	}
	holder := leaseOf(t, w, state.DeliveryLease("hook", "acme"))
	dead := fleet[holder.Holder]
	if dead == nil {
		t.Fatalf("the delivery lease is held by %q; want a or b", holder.Holder)
	}
	dead.kill()
	close(release)
	waitFor(t, "every event delivered", 30*time.Second, func() bool {
		seen := map[string]bool{}
		for _, id := range rc.ids("acme") {
			seen[id] = true
		}
		return len(seen) == len(ids)
	})
	got := rc.ids("acme")
	repeats := checkRuns(t, ids, got)
	t.Logf("holder %s died at the sixth request; %d arrivals, %d repeated", holder.Holder, len(got), repeats)
	now := leaseOf(t, w, state.DeliveryLease("hook", "acme"))
	if now.Holder == holder.Holder || now.Token <= holder.Token {
		t.Errorf("lease after the takeover = %+v; want the other instance with a token above %d", now, holder.Token)
	}
	if n := guard.count(); n != 0 {
		t.Errorf("%d requests overlapped another of the same organization", n)
	}
}

// leaseOf returns the lease name as stored.
func leaseOf(t *testing.T, db *postgres.DB, name string) state.Lease {
	t.Helper()
	ls, err := db.Leases()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no lease %s in %+v", name, ls)
	return state.Lease{}
}

// TestFleetRetentionOneAtATime: an instance does not purge while another
// holds the retention lease, and purges once it is free.
func TestFleetRetentionOneAtATime(t *testing.T) {
	url, w := fleetStore(t, "acme")
	commit(t, w, "acme", 5)
	a := newInstance(t, url, "a", Config{Retention: time.Nanosecond})
	other := openPG(t, url, "other", true)
	l, err := other.AcquireLease(state.RetentionLease, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := a.d.Purge(context.Background()); n != 0 || err != nil {
		t.Errorf("Purge while another instance purges = %d, %v; want 0, nil", n, err)
	}
	if n, _ := w.CountEvents("acme", ""); n != 5 {
		t.Errorf("events after a held-off purge = %d; want 5", n)
	}
	if err := other.ReleaseLease(l); err != nil {
		t.Fatal(err)
	}
	if n, err := a.d.Purge(context.Background()); n != 5 || err != nil {
		t.Errorf("Purge = %d, %v; want 5, nil", n, err)
	}
	if got := leaseOf(t, w, state.RetentionLease); got.Holder != "" {
		t.Errorf("retention lease after the purge = %+v; want released", got)
	}
}

// TestFleetEndpointStateShared: an endpoint one instance disabled (410
// Gone) is enabled again by a redelivery through another instance, and
// the first instance, at its next poll, delivers again.
func TestFleetEndpointStateShared(t *testing.T) {
	url, w := fleetStore(t, "acme")
	var gone atomic.Bool
	gone.Store(true)
	rc := newReceiver(t, false, func(rw http.ResponseWriter, _ *http.Request, _ arrival, _ int) bool {
		if gone.Load() {
			rw.WriteHeader(http.StatusGone)
			return false
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "hook"
	cfg := Config{Endpoints: []Endpoint{ep}, LeaseTTL: 2 * time.Second}
	a := startInstance(t, url, "a", cfg)
	b := newInstance(t, url, "b", cfg) // answers the API; its deliverer does not run
	ids := commit(t, w, "acme", 3)
	waitFor(t, "the endpoint disabled", 30*time.Second, func() bool {
		st, err := w.Endpoint("hook")
		return err == nil && st.Disabled
	})
	gone.Store(false)
	res, err := b.d.Redeliver(context.Background(), ids[0], "hook")
	if err != nil || len(res) != 1 || !res[0].Delivered {
		t.Fatalf("Redeliver through b = %+v, %v; want delivered", res, err)
	}
	if st, err := w.Endpoint("hook"); err != nil || st.Disabled {
		t.Fatalf("endpoint after the redelivery = %+v, %v; want enabled", st, err)
	}
	a.d.Wake("") // the Listener's poll
	waitFor(t, "the events delivered by a", 30*time.Second, func() bool { return len(rc.ids("acme")) >= 4 })
	if diff := cmp.Diff(append([]string{ids[0]}, ids...), rc.ids("acme")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
}
