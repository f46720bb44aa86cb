package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rosterd/rosterd/state"
)

func newDeliverer(t testing.TB, cfg Config) *Deliverer {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func TestDeliversInOrderOncePerOrg(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme", "globex")
	rc := newReceiver(t, true, nil)
	var logs bytes.Buffer
	reg := prometheus.NewPedanticRegistry()
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{rc.endpoint(t)}, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	stop := run(t, d)

	want := map[string][]string{}
	for range 3 {
		for _, org := range []string{"acme", "globex"} {
			want[org] = append(want[org], emit(t, db, org, 40, time.Time{})...)
			d.Wake(org)
		}
	}
	waitFor(t, "240 deliveries", 10*time.Second, func() bool { return len(rc.got()) >= 240 })
	// The receiver answers before the deliverer has read the answer: wait
	// for the deliverer to count the last one too.
	delivered := d.metrics.deliveries.WithLabelValues(DefaultEndpointID(rc.url), "delivered")
	waitFor(t, "240 deliveries counted", 10*time.Second, func() bool { return testutil.ToFloat64(delivered) >= 240 })
	for _, org := range []string{"acme", "globex"} {
		if diff := cmp.Diff(want[org], rc.ids(org)); diff != "" {
			t.Errorf("arrivals of %s (-want +got):\n%s", org, diff)
		}
	}
	if rc.badSig != 0 {
		t.Errorf("%d requests with a bad signature", rc.badSig)
	}
	// Keep-alive: one connection per organization's worker, not one per event.
	if n := rc.conns.Load(); n > 4 {
		t.Errorf("240 events took %d connections; want keep-alive (at most 4)", n)
	}
	if n := testutil.ToFloat64(d.metrics.deliveries.WithLabelValues(DefaultEndpointID(rc.url), "delivered")); n != 240 {
		t.Errorf("deliveries_total{delivered} = %v; want 240", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP rosterd_webhook_pending_events Events committed and not yet delivered or failed, per endpoint.
# TYPE rosterd_webhook_pending_events gauge
rosterd_webhook_pending_events{endpoint="`+DefaultEndpointID(rc.url)+`"} 0
`), "rosterd_webhook_pending_events"); err != nil {
		t.Error(err)
	}
	stop()
	// Cursors are written: a new Deliverer sends nothing again.
	for _, org := range []string{"acme", "globex"} {
		c, err := db.Cursor(DefaultEndpointID(rc.url), org)
		if err != nil || c.After != want[org][len(want[org])-1] {
			t.Errorf("Cursor(%s) = %+v, %v; want after the last event", org, c, err)
		}
	}
	if strings.Contains(logs.String(), "MfKQ9r8") {
		t.Errorf("the log holds the secret")
	}
}

// TestNewEndpointStartsNow: an endpoint first seen after events were
// committed receives only later events.
func TestNewEndpointStartsNow(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	emit(t, db, "acme", 5, time.Time{})
	rc := newReceiver(t, false, nil)
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{rc.endpoint(t)}})
	run(t, d)
	later := emit(t, db, "acme", 3, time.Time{})
	d.Wake("acme")
	waitFor(t, "3 deliveries", 5*time.Second, func() bool { return len(rc.got()) >= 3 })
	if diff := cmp.Diff(later, rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
}

// TestRetryKeepsOrder: 500 twice, then 200; the next events wait.
func TestRetryKeepsOrder(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	var third string
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		if a.ID == third && n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return false
		}
		return true
	})
	ids := emit(t, db, "acme", 6, time.Time{})
	third = ids[2]
	ep := rc.endpoint(t)
	ep.ID = "wh_test"
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(3, 20*time.Millisecond)})
	// The endpoint is new, so it starts after the events above; move it
	// back to the start.
	if err := db.SaveCursors(state.CursorUpdate{Endpoint: "wh_test", Org: "acme", Cursor: state.Cursor{After: ""}}); err != nil {
		t.Fatal(err)
	}
	run(t, d)
	waitFor(t, "6 deliveries", 5*time.Second, func() bool { return len(rc.got()) >= 6 })
	if diff := cmp.Diff(ids, rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
	if n := rc.tries(third); n != 3 {
		t.Errorf("attempts of the third event = %d; want 3", n)
	}
	if n := testutil.ToFloat64(d.metrics.deliveries.WithLabelValues("wh_test", "retry")); n != 2 {
		t.Errorf("deliveries_total{retry} = %v; want 2", n)
	}
}

// startAtZero registers ep and moves its acme cursor to the start of the
// feed, so that events emitted before New are delivered.
func startAtZero(t *testing.T, db *state.DB, id string, orgs ...string) {
	t.Helper()
	if _, err := db.RegisterEndpoint(id, "x"); err != nil {
		t.Fatal(err)
	}
	for _, o := range orgs {
		if err := db.SaveCursors(state.CursorUpdate{Endpoint: id, Org: o}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTimeoutAndClosedConnection: an answer slower than the timeout and a
// connection closed without an answer are both retried.
func TestTimeoutAndClosedConnection(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	ids := emit(t, db, "acme", 3, time.Time{})
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		switch {
		case a.ID == ids[0] && n == 1: // hang past the timeout
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return false
		case a.ID == ids[1] && n == 1: // close the connection
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return false
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "wh_t"
	startAtZero(t, db, "wh_t", "acme")
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Timeout: 200 * time.Millisecond, Schedule: fast(3, 10*time.Millisecond)})
	run(t, d)
	waitFor(t, "3 deliveries", 5*time.Second, func() bool { return len(rc.got()) >= 3 })
	if diff := cmp.Diff(ids, rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
	if rc.tries(ids[0]) != 2 || rc.tries(ids[1]) != 2 {
		t.Errorf("attempts = %d, %d; want 2, 2", rc.tries(ids[0]), rc.tries(ids[1]))
	}
}

// TestGoneDisablesEndpoint: 410 disables the endpoint, durably; nothing
// more is sent; a successful redelivery enables it again and the rest
// follows in order.
func TestGoneDisablesEndpoint(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	ids := emit(t, db, "acme", 4, time.Time{})
	var gone atomic.Bool
	gone.Store(true)
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		if a.ID == ids[1] && gone.Load() {
			w.WriteHeader(http.StatusGone)
			return false
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "wh_g"
	startAtZero(t, db, "wh_g", "acme")
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(3, 10*time.Millisecond)})
	stop := run(t, d)
	waitFor(t, "endpoint disabled", 5*time.Second, func() bool {
		st, _ := db.Endpoint("wh_g")
		return st.Disabled
	})
	d.Wake("acme")
	more := emit(t, db, "acme", 1, time.Time{})
	d.Wake("acme")
	stop()
	if diff := cmp.Diff(ids[:1], rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
	if rc.tries(ids[1]) != 1 || rc.tries(ids[2]) != 0 {
		t.Errorf("attempts after 410 = %d, %d; want 1, 0", rc.tries(ids[1]), rc.tries(ids[2]))
	}
	st, _ := d.Endpoints()
	if len(st) != 1 || st[0].Enabled || st[0].Pending != 4 || !strings.Contains(st[0].DisabledReason, "410") {
		t.Errorf("Endpoints() = %+v; want one disabled with 4 pending", st)
	}

	// Still disabled after a restart.
	d = newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(3, 10*time.Millisecond)})
	run(t, d)
	gone.Store(false)
	res, err := d.Redeliver(context.Background(), ids[1], "")
	if err != nil || len(res) != 1 || !res[0].Delivered {
		t.Fatalf("Redeliver = %+v, %v; want delivered", res, err)
	}
	want := append(append(ids[:1:1], ids[1]), ids[1:]...)
	want = append(want, more...)
	waitFor(t, "the rest", 5*time.Second, func() bool { return len(rc.got()) >= len(want) })
	if diff := cmp.Diff(want, rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
}

// TestRetryAfter: a 429 with Retry-After is retried after that delay, not
// after the (here one hour) schedule.
func TestRetryAfter(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	ids := emit(t, db, "acme", 2, time.Time{})
	var first time.Time
	var second atomic.Int64
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		if a.ID == ids[0] {
			if n == 1 {
				first = time.Now()
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return false
			}
			second.Store(int64(time.Since(first)))
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "wh_r"
	startAtZero(t, db, "wh_r", "acme")
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(3, time.Hour)})
	run(t, d)
	waitFor(t, "2 deliveries", 5*time.Second, func() bool { return len(rc.got()) >= 2 })
	if diff := cmp.Diff(ids, rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
	if s := time.Duration(second.Load()); s < 900*time.Millisecond || s > 3*time.Second {
		t.Errorf("retry after %v; want about 1s (Retry-After: 1)", s)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"5", 5 * time.Second}, {"-3", 0}, {"soon", 0},
		{"999999999", maxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(100 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
	for range 100 {
		if j := jitter(time.Second); j < 800*time.Millisecond || j > 1200*time.Millisecond {
			t.Fatalf("jitter(1s) = %v; want within ±20%%", j)
		}
	}
}

// TestFailedIsSkippedAndRedelivered: after the last retry an event is
// failed, listed, and the next one goes; redelivery clears it.
func TestFailedIsSkippedAndRedelivered(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	ids := emit(t, db, "acme", 3, time.Time{})
	var broken atomic.Bool
	broken.Store(true)
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		if a.ID == ids[1] && broken.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return false
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "wh_f"
	startAtZero(t, db, "wh_f", "acme")
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(2, 10*time.Millisecond)})
	run(t, d)
	waitFor(t, "2 deliveries", 5*time.Second, func() bool { return len(rc.got()) >= 2 })
	if diff := cmp.Diff([]string{ids[0], ids[2]}, rc.ids("")); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
	if n := rc.tries(ids[1]); n != 3 {
		t.Errorf("attempts of the failed event = %d; want 3", n)
	}
	f, err := db.FailedDeliveries("wh_f", "", 0)
	if err != nil || len(f) != 1 || f[0].EventID != ids[1] || f[0].Attempts != 3 || f[0].LastStatus != 500 || f[0].Event != state.EventUserCreated {
		t.Fatalf("FailedDeliveries = %+v, %v; want the second event, 3 attempts, 500", f, err)
	}
	if _, err := d.Redeliver(context.Background(), "evt_nope", ""); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Redeliver(unknown) = %v; want ErrNotFound", err)
	}
	res, err := d.Redeliver(context.Background(), ids[1], "")
	if err != nil || len(res) != 1 || res[0].Delivered || res[0].Status != 500 {
		t.Errorf("Redeliver while broken = %+v, %v; want one failed with 500", res, err)
	}
	broken.Store(false)
	res, err = d.Redeliver(context.Background(), ids[1], "wh_f")
	if err != nil || len(res) != 1 || !res[0].Delivered {
		t.Errorf("Redeliver = %+v, %v; want delivered", res, err)
	}
	if f, _ := db.FailedDeliveries("wh_f", "", 0); len(f) != 0 {
		t.Errorf("FailedDeliveries after redelivery = %+v; want none", f)
	}
	if _, err := d.Redeliver(context.Background(), ids[1], "wh_other"); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Redeliver(other endpoint) = %v; want ErrNoEndpoint", err)
	}
}

// TestReceiverDownAcrossTwoRestarts: the receiver is down while the
// deliverer restarts twice (retry state from bbolt), then comes back:
// everything arrives in order, none lost.
func TestReceiverDownAcrossTwoRestarts(t *testing.T) {
	path := t.TempDir() + "/rosterd.db"
	db, err := state.Open(path, &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustOrg(t, db, "acme", "globex")
	rc := newReceiver(t, false, nil)
	rc.stop()
	ep := rc.endpoint(t)
	ep.ID = "wh_d"
	cfg := Config{Endpoints: []Endpoint{ep}, Schedule: fast(100, 20*time.Millisecond)}
	want := map[string][]string{}
	for round := range 3 {
		cfg.DB = db
		d := newDeliverer(t, cfg)
		stop := run(t, d)
		for _, org := range []string{"acme", "globex"} {
			want[org] = append(want[org], emit(t, db, org, 5, time.Time{})...)
			d.Wake(org)
		}
		if round < 2 {
			waitFor(t, "retry state stored", 5*time.Second, func() bool {
				c, _ := db.Cursor("wh_d", "acme")
				return c.Retry != nil && c.Retry.Attempts >= 2
			})
			stop()
			db.Close()
			if db, err = state.Open(path, &state.Options{NoSync: true}); err != nil {
				t.Fatal(err)
			}
			c, _ := db.Cursor("wh_d", "acme")
			if c.Retry == nil || c.Retry.EventID != want["acme"][0] {
				t.Fatalf("after restart %d: cursor %+v; want retry state of the first event", round+1, c)
			}
			continue
		}
		rc.restart()
		waitFor(t, "30 deliveries", 10*time.Second, func() bool { return len(rc.got()) >= 30 })
		stop()
	}
	defer db.Close()
	for _, org := range []string{"acme", "globex"} {
		if diff := cmp.Diff(want[org], rc.ids(org)); diff != "" {
			t.Errorf("arrivals of %s (-want +got):\n%s", org, diff)
		}
	}
}

// TestOrganizationsDoNotWait: org "slow" keeps failing on the same
// endpoint while "fast" is delivered at once.
func TestOrganizationsDoNotWait(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "slow", "fast")
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		if a.Org == "slow" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return false
		}
		return true
	})
	ep := rc.endpoint(t)
	ep.ID = "wh_o"
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(5, 5*time.Second)})
	run(t, d)
	slow := emit(t, db, "slow", 3, time.Time{})
	d.Wake("slow")
	waitFor(t, "slow's first attempt", 5*time.Second, func() bool { return rc.tries(slow[0]) == 1 })
	want := emit(t, db, "fast", 20, time.Time{})
	d.Wake("fast")
	waitFor(t, "fast's events", 3*time.Second, func() bool { return len(rc.got()) >= 20 })
	if diff := cmp.Diff(want, rc.ids("fast")); diff != "" {
		t.Errorf("arrivals of fast (-want +got):\n%s", diff)
	}
	if rc.tries(slow[0]) != 1 || rc.tries(slow[1]) != 0 {
		t.Errorf("slow's attempts = %d, %d; want 1, 0", rc.tries(slow[0]), rc.tries(slow[1]))
	}
}

// TestEndpointOrganizationsFilter: an endpoint for some organizations
// receives only theirs.
func TestEndpointOrganizationsFilter(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme", "globex")
	rc := newReceiver(t, false, nil)
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{rc.endpoint(t, "globex")}})
	run(t, d)
	emit(t, db, "acme", 3, time.Time{})
	want := emit(t, db, "globex", 3, time.Time{})
	d.Wake("acme")
	d.Wake("globex")
	waitFor(t, "globex's events", 5*time.Second, func() bool { return len(rc.got()) >= 3 })
	d.Wake("")
	emit(t, db, "globex", 1, time.Time{})
	d.Wake("globex")
	waitFor(t, "one more", 5*time.Second, func() bool { return len(rc.got()) >= 4 })
	if got := rc.ids("acme"); len(got) != 0 {
		t.Errorf("acme's events reached a globex-only endpoint: %v", got)
	}
	if diff := cmp.Diff(want, rc.ids("globex")[:3]); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
}

// TestSetEndpoints: a reload adds an endpoint (from now on), removes one,
// and keeps an unchanged one running.
func TestSetEndpoints(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	a := newReceiver(t, false, nil)
	b := newReceiver(t, true, nil)
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{a.endpoint(t)}})
	run(t, d)
	first := emit(t, db, "acme", 2, time.Time{})
	d.Wake("acme")
	waitFor(t, "a gets 2", 5*time.Second, func() bool { return len(a.got()) >= 2 })
	if err := d.SetEndpoints([]Endpoint{b.endpoint(t)}); err != nil {
		t.Fatal(err)
	}
	second := emit(t, db, "acme", 2, time.Time{})
	d.Wake("acme")
	waitFor(t, "b gets 2", 5*time.Second, func() bool { return len(b.got()) >= 2 })
	if diff := cmp.Diff(first, a.ids("")); diff != "" {
		t.Errorf("a's arrivals (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(second, b.ids("")); diff != "" {
		t.Errorf("b's arrivals (-want +got):\n%s", diff)
	}
	if err := d.SetEndpoints([]Endpoint{b.endpoint(t), b.endpoint(t)}); !errors.Is(err, ErrBadEndpoint) {
		t.Errorf("SetEndpoints(same twice) = %v; want ErrBadEndpoint", err)
	}
	if err := d.SetEndpoints([]Endpoint{{URL: "ftp://x", Secret: GenerateSecret()}}); !errors.Is(err, ErrBadEndpoint) {
		t.Errorf("SetEndpoints(ftp) = %v; want ErrBadEndpoint", err)
	}
	if err := d.SetEndpoints([]Endpoint{{URL: "http://x"}}); !errors.Is(err, ErrBadEndpoint) {
		t.Errorf("SetEndpoints(no secret) = %v; want ErrBadEndpoint", err)
	}

	// A reload with a new timeout and schedule: a new client, the new
	// schedule, and the endpoints still delivering.
	oldClient := d.opt().client
	if err := d.Reconfigure(Config{Endpoints: []Endpoint{b.endpoint(t)}, Timeout: time.Second, Schedule: fast(2, time.Millisecond), Retention: -1}); err != nil {
		t.Fatal(err)
	}
	if o := d.opt(); o.client == oldClient || o.client.Timeout != time.Second || len(o.schedule) != 2 || o.retention != -1 {
		t.Errorf("after Reconfigure: timeout %v, schedule %v, retention %v; want 1s, 2 delays, -1", o.client.Timeout, o.schedule, o.retention)
	}
	third := emit(t, db, "acme", 1, time.Time{})
	d.Wake("acme")
	waitFor(t, "b gets 3", 5*time.Second, func() bool { return len(b.got()) >= 3 })
	if got := b.ids(""); got[2] != third[0] {
		t.Errorf("b's third arrival = %s; want %s", got[2], third[0])
	}
	if n, err := d.Purge(context.Background()); n != 0 || err != nil {
		t.Errorf("Purge with retention -1 = %d, %v; want 0, nil", n, err)
	}
}

// TestRedirectNotFollowed: a 3xx is not followed; it is a failure.
func TestRedirectNotFollowed(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme")
	target := newReceiver(t, false, nil)
	ids := emit(t, db, "acme", 1, time.Time{})
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		http.Redirect(w, r, target.url, http.StatusTemporaryRedirect)
		return false
	})
	ep := rc.endpoint(t)
	ep.ID = "wh_3"
	startAtZero(t, db, "wh_3", "acme")
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(1, 10*time.Millisecond)})
	run(t, d)
	waitFor(t, "failed", 5*time.Second, func() bool {
		f, _ := db.FailedDeliveries("wh_3", "", 0)
		return len(f) == 1 && f[0].LastStatus == 307
	})
	if len(target.got()) != 0 || rc.tries(ids[0]) != 2 {
		t.Errorf("redirect target got %d, origin %d attempts; want 0, 2", len(target.got()), rc.tries(ids[0]))
	}
}

// TestRetention purges old events that every endpoint is done with, and
// never one still pending.
func TestRetention(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme", "other")
	// Event ids carry their commit time; the cut between old and recent
	// is a millisecond boundary, and the Deliverer's clock is moved so
	// that the old events are past the retention.
	acme := emit(t, db, "acme", 10, time.Time{})
	emit(t, db, "other", 4, time.Time{})
	cut := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	waitFor(t, "the next millisecond", time.Second, func() bool { return time.Now().After(cut) })
	recent := emit(t, db, "acme", 2, time.Time{})
	rc := newReceiver(t, false, nil)
	ep := rc.endpoint(t, "acme")
	ep.ID = "wh_ret"
	if _, err := db.RegisterEndpoint("wh_ret", rc.url); err != nil {
		t.Fatal(err)
	}
	// Delivered up to acme[5]; acme[6:] are pending.
	if err := db.SaveCursors(state.CursorUpdate{Endpoint: "wh_ret", Org: "acme", Cursor: state.Cursor{After: acme[5]}}); err != nil {
		t.Fatal(err)
	}
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}})
	d.now = func() time.Time { return cut.Add(DefaultRetention) }
	n, err := d.Purge(context.Background())
	if err != nil || n != 6+4 {
		t.Fatalf("Purge = %d, %v; want 10 (6 delivered of acme, 4 of other)", n, err)
	}
	evs, _ := db.Events("", "", 0)
	var got []string
	for _, e := range evs {
		got = append(got, e.ID)
	}
	want := append(slices.Clone(acme[6:]), recent...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events after purge (-want +got):\n%s", diff)
	}
}

// TestEndpointsReportLag: an endpoint stuck retrying an event shows its
// age as lag, for the endpoint and for the organization, and an
// organization that is caught up shows none.
func TestEndpointsReportLag(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme", "globex")
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return false
	})
	ids := emit(t, db, "acme", 2, time.Time{})
	ep := rc.endpoint(t)
	ep.ID = "wh_lag"
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: fast(1, time.Hour)})
	// The endpoint is new, so it starts after the events above; move it
	// back to the start.
	if err := db.SaveCursors(state.CursorUpdate{Endpoint: "wh_lag", Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	// The events are three minutes old (the receiver accepts signatures up
	// to five minutes off).
	d.now = func() time.Time { return time.Now().Add(3 * time.Minute) }
	run(t, d)
	waitFor(t, "the first attempt", 5*time.Second, func() bool { return rc.tries(ids[0]) >= 1 })
	var st EndpointStatus
	waitFor(t, "the lag", 5*time.Second, func() bool {
		eps, err := d.Endpoints()
		if err != nil || len(eps) != 1 {
			t.Fatalf("Endpoints() = %v, %v; want one", eps, err)
		}
		st = eps[0]
		return st.LagSeconds > 0
	})
	if st.LagSeconds < 170 || len(st.Lag) != 1 || st.Lag[0].Org != "acme" || st.Lag[0].Seconds != st.LagSeconds {
		t.Errorf("lag = %v, by organization %+v; want about 180 s, all of it acme's (globex has nothing to send)", st.LagSeconds, st.Lag)
	}
}
