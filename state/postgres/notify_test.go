package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// heard is what a listener's handlers were called with, per channel.
type heard struct {
	batches, events chan string
}

// startListener runs a Listener of db with handlers that report into the
// returned channels, until t ends.
func startListener(t *testing.T, db *DB, poll time.Duration) heard {
	t.Helper()
	h := heard{batches: make(chan string, 100), events: make(chan string, 100)}
	l := db.NewListener(ListenerConfig{Poll: poll})
	l.Handle(ChannelBatches, func(p string) { h.batches <- p })
	l.Handle(ChannelEvents, func(p string) { h.events <- p })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listener.Run: %v", err)
		}
	})
	return h
}

// next returns the next payload on c, failing t after a deadline.
func next(t *testing.T, c chan string, what string) string {
	t.Helper()
	select {
	case p := <-c:
		return p
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s notification within 30 s", what)
		return ""
	}
}

// expect reads c until want, failing on anything else but "" (a poll).
func expect(t *testing.T, c chan string, what, want string) {
	t.Helper()
	for {
		p := next(t, c, what)
		if p == want {
			return
		}
		if p != "" {
			t.Fatalf("%s notification %q; want %q", what, p, want)
		}
	}
}

// TestListenerNotifications: another instance's batch writes and event
// commits reach a listener, in commit order; a write that rolls back
// sends nothing.
func TestListenerNotifications(t *testing.T) {
	url := newDB(t)
	a, b := openInstance(t, url, "a"), openInstance(t, url, "b")
	for _, o := range []string{"acme", "beta"} {
		if err := b.CreateOrg(state.Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	h := startListener(t, a, time.Hour)
	// Connected: every handler is called with "" first.
	if p := next(t, h.batches, "batches"); p != "" {
		t.Fatalf("first batches call %q; want \"\" (connected)", p)
	}
	if p := next(t, h.events, "events"); p != "" {
		t.Fatalf("first events call %q; want \"\" (connected)", p)
	}
	if _, err := b.AcquireLease(state.BatchLease("acme"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireLease(state.BatchLease("beta"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := b.FormBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, h.batches, "batches", "acme")
	// Rolled back (the id is taken): nothing; the next notification is
	// beta's.
	if _, err := b.FormBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending}, nil); err == nil {
		t.Fatal("FormBatch(B1) again succeeded")
	}
	if err := b.RecordIgnored(state.Batch{ID: "B2", Org: "beta", Status: state.BatchIgnored}, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	expect(t, h.batches, "batches", "beta")
	if _, err := b.appendEvents("beta", "B9", []eventRecord{{Type: state.EventUserCreated, Data: []byte(`{}`)}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, h.events, "events", "beta")
}

// TestListenerReconnects: when its connection is cut, the listener
// connects again, calls every handler with "" (notifications may have
// been lost meanwhile) and hears the next ones.
func TestListenerReconnects(t *testing.T) {
	url := newDB(t)
	a := openInstance(t, url, "a")
	if err := a.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	h := startListener(t, a, time.Hour)
	expect(t, h.events, "events", "")
	var n int
	err := connect(t, url).QueryRow(context.Background(),
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'rosterd listener a'").Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminated %d listening connections, %v; want 1", n, err)
	}
	expect(t, h.events, "events", "") // connected again
	if _, err := a.appendEvents("acme", "B1", []eventRecord{{Type: state.EventUserCreated, Data: []byte(`{}`)}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, h.events, "events", "acme")
}

// TestListenerPolls: without notifications, the handlers are called
// with "" every Poll.
func TestListenerPolls(t *testing.T) {
	h := startListener(t, openTest(t), 50*time.Millisecond)
	for range 3 {
		if p := next(t, h.batches, "batches"); p != "" {
			t.Fatalf("batches call %q; want \"\" (a poll)", p)
		}
	}
}
