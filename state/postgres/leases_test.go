package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// openInstance opens a fenced store on url as the fleet instance name,
// closed when t ends.
func openInstance(t *testing.T, url, name string) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{URL: url, Instance: name, Fenced: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// expire makes the lease name expired, as if its ttl had passed.
func expire(t *testing.T, url, name string) {
	t.Helper()
	_, err := connect(t, url).Exec(context.Background(),
		"UPDATE rosterd.leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = $1", name)
	if err != nil {
		t.Fatal(err)
	}
}

// fleet returns the URL of a new database with organization acme and two
// fenced instances a and b on it.
func fleet(t *testing.T) (url string, a, b *DB) {
	t.Helper()
	url = newDB(t)
	a, b = openInstance(t, url, "a"), openInstance(t, url, "b")
	if err := a.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	return url, a, b
}

func formBatch(db *DB, id string) error {
	_, err := db.FormBatch(state.Batch{ID: id, Org: "acme", Status: state.BatchPending}, nil)
	return err
}

// TestLeaseTakeoverAfterExpiry: another instance takes an organization's
// batch lease over once it has expired, and from then on the old holder
// can neither write under it nor renew it.
func TestLeaseTakeoverAfterExpiry(t *testing.T) {
	url, a, b := fleet(t)
	name := state.BatchLease("acme")
	if err := formBatch(a, "B1"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("FormBatch without the lease = %v; want ErrLeaseLost", err)
	}
	la, err := a.AcquireLease(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if la.Holder != "a" {
		t.Errorf("lease holder = %q; want a", la.Holder)
	}
	if _, err := b.AcquireLease(name, time.Hour); !errors.Is(err, state.ErrLeaseHeld) {
		t.Errorf("b's AcquireLease of a's lease = %v; want ErrLeaseHeld", err)
	}
	if err := formBatch(a, "B1"); err != nil {
		t.Fatalf("a's FormBatch under its lease: %v", err)
	}
	if err := formBatch(b, "B2"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("b's FormBatch under a's lease = %v; want ErrLeaseLost", err)
	}

	expire(t, url, name)
	lb, err := b.AcquireLease(name, time.Hour)
	if err != nil {
		t.Fatalf("b's AcquireLease of the expired lease: %v", err)
	}
	if lb.Token <= la.Token || lb.Holder != "b" {
		t.Errorf("b's lease = %+v; want holder b, a token greater than a's %d", lb, la.Token)
	}
	// The stale holder cannot commit, whatever it writes.
	writes := map[string]func() error{
		"FormBatch": func() error { return formBatch(a, "B3") },
		"FinishBatch": func() error {
			return a.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchRejected}, []byte(`{}`))
		},
		"RecordFailure": func() error {
			return a.RecordFailure(state.Batch{ID: "B1", Org: "acme", Attempts: 1}, nil)
		},
		"UpdateBatch": func() error {
			_, err := a.UpdateBatch("acme", "B1", func(*state.Batch) error { return nil })
			return err
		},
		"ForgetCompletions": func() error { return a.ForgetCompletions("acme", []string{"users.csv"}) },
		// Apply's two paths: a record alone, and changes streamed.
		"Apply unchanged": func() error { return staleApply(a, state.BatchUnchanged, nil) },
		"Apply applied": func() error {
			return staleApply(a, state.BatchApplied, func(state.Writer) error { return nil })
		},
	}
	for op, write := range writes {
		if err := write(); !errors.Is(err, state.ErrLeaseLost) {
			t.Errorf("a's %s after the takeover = %v; want ErrLeaseLost", op, err)
		}
	}
	if _, err := a.Batch("acme", "B3"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the stale holder's batch B3: %v; want none", err)
	}
	if bt, _ := a.Batch("acme", "B1"); bt.Status != state.BatchPending || bt.Attempts != 0 {
		t.Errorf("B1 after the stale holder's writes = %+v; want pending, untouched", bt)
	}
	if _, err := a.RenewLease(la, time.Hour); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("a's RenewLease after the takeover = %v; want ErrLeaseLost", err)
	}
	if _, err := a.AcquireLease(name, time.Hour); !errors.Is(err, state.ErrLeaseHeld) {
		t.Errorf("a's AcquireLease of b's lease = %v; want ErrLeaseHeld", err)
	}
	if err := formBatch(b, "B3"); err != nil {
		t.Errorf("b's FormBatch under its lease: %v", err)
	}
	// Released, the lease goes to the next instance at once.
	if err := b.ReleaseLease(lb); err != nil {
		t.Fatal(err)
	}
	if err := formBatch(b, "B4"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("b's FormBatch after releasing = %v; want ErrLeaseLost", err)
	}
	if l, err := a.AcquireLease(name, time.Hour); err != nil || l.Token <= lb.Token {
		t.Errorf("a's AcquireLease after b released = %+v, %v; want a token greater than %d", l, err, lb.Token)
	}
}

// TestLeaseTakeoverWaitsForWriteInFlight: a takeover never happens under
// a write in flight: the write commits, the lease counts as held until
// then, the holder can renew meanwhile, and after the takeover the old
// holder's next write fails.
func TestLeaseTakeoverWaitsForWriteInFlight(t *testing.T) {
	url, a, b := fleet(t)
	name := state.BatchLease("acme")
	la, err := a.AcquireLease(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := formBatch(a, "B1"); err != nil {
		t.Fatal(err)
	}
	// FormBatch(B2) supersedes B1: its report function runs inside the
	// transaction, which holds the lease row, and waits there.
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.FormBatch(state.Batch{ID: "B2", Org: "acme", Status: state.BatchPending}, func(state.Batch) []byte {
			close(inside)
			<-release
			return []byte(`{}`)
		})
		done <- err
	}()
	<-inside
	// A renewal does not wait for the write.
	if _, err := a.RenewLease(la, time.Hour); err != nil {
		t.Errorf("a's RenewLease during its write: %v", err)
	}
	expire(t, url, name)
	if _, err := b.AcquireLease(name, time.Hour); !errors.Is(err, state.ErrLeaseHeld) {
		t.Errorf("b's AcquireLease of an expired lease with a write in flight = %v; want ErrLeaseHeld", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("a's write in flight: %v", err)
	}
	if got, _ := b.Batch("acme", "B1"); got.Status != state.BatchSuperseded || got.SupersededBy != "B2" {
		t.Errorf("B1 = %s by %q; want superseded by B2 (the write committed)", got.Status, got.SupersededBy)
	}
	if _, err := b.AcquireLease(name, time.Hour); err != nil {
		t.Fatalf("b's AcquireLease after the write: %v", err)
	}
	if err := formBatch(a, "B3"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("a's FormBatch after the takeover = %v; want ErrLeaseLost", err)
	}
}

// TestDeliveryLeaseFences: the delivery state of an (endpoint,
// organization) is written only by the holder of its lease.
func TestDeliveryLeaseFences(t *testing.T) {
	url, a, b := fleet(t)
	if _, err := a.RegisterEndpoint("wh:1", "https://a.example/hook"); err != nil {
		t.Fatal(err)
	}
	name := state.DeliveryLease("wh:1", "acme")
	save := func(db *DB, after string) error {
		return db.SaveCursors(state.CursorUpdate{Endpoint: "wh:1", Org: "acme", Cursor: state.Cursor{After: after}})
	}
	failed := state.FailedDelivery{Endpoint: "wh:1", EventID: "evt_2", Event: "dsync.user.created", Org: "acme", Attempts: 3, FailedAt: time.Now()}
	if err := save(a, "evt_1"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("SaveCursors without the lease = %v; want ErrLeaseLost", err)
	}
	if _, err := a.AcquireLease(name, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := save(a, "evt_1"); err != nil {
		t.Fatalf("a's SaveCursors under its lease: %v", err)
	}
	if err := a.MarkFailed(failed); err != nil {
		t.Fatalf("a's MarkFailed under its lease: %v", err)
	}
	// Another organization's delivery is another lease.
	if err := a.SaveCursors(state.CursorUpdate{Endpoint: "wh:1", Org: "beta", Cursor: state.Cursor{After: "evt_1"}}); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("SaveCursors for beta under acme's lease = %v; want ErrLeaseLost", err)
	}
	expire(t, url, name)
	if _, err := b.AcquireLease(name, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := save(a, "evt_3"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("a's SaveCursors after the takeover = %v; want ErrLeaseLost", err)
	}
	if c, err := b.Cursor("wh:1", "acme"); err != nil || c.After != "evt_2" {
		t.Errorf("cursor = %+v, %v; want after evt_2 (a's last write under its lease)", c, err)
	}
	// Clearing a failed delivery follows a redelivery, which the instance
	// the API request reached sends: it needs no lease.
	if err := a.ClearFailed("wh:1", "evt_2"); err != nil {
		t.Errorf("ClearFailed by an instance without the lease: %v", err)
	}
	if n, _ := b.CountFailed("wh:1"); n != 0 {
		t.Errorf("failed deliveries after a cleared = %d; want 0", n)
	}
}

// TestLeaseRestartedInstance: an instance restarted under its name takes
// its lease back at once, and the process it replaced (if it still runs)
// is fenced off by the new token.
func TestLeaseRestartedInstance(t *testing.T) {
	url, old, _ := fleet(t)
	name := state.BatchLease("acme")
	if _, err := old.AcquireLease(name, time.Hour); err != nil {
		t.Fatal(err)
	}
	restarted := openInstance(t, url, "a")
	if _, err := restarted.AcquireLease(name, time.Hour); err != nil {
		t.Fatalf("AcquireLease by the restarted instance: %v", err)
	}
	if err := formBatch(old, "B1"); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("the replaced process's FormBatch = %v; want ErrLeaseLost", err)
	}
	if err := formBatch(restarted, "B1"); err != nil {
		t.Errorf("the restarted instance's FormBatch: %v", err)
	}
}

// TestLeaseAcquireConcurrent: of instances acquiring one free lease at
// once, exactly one gets it.
func TestLeaseAcquireConcurrent(t *testing.T) {
	url := newDB(t)
	const n = 6
	dbs := make([]*DB, n)
	for i := range dbs {
		dbs[i] = openInstance(t, url, fmt.Sprintf("i%d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = dbs[i].AcquireLease(state.BatchLease("acme"), time.Hour) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, state.ErrLeaseHeld):
			t.Errorf("instance %d: %v; want the lease or ErrLeaseHeld", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d instances got the lease; want 1", won)
	}
}

// TestDefaultInstance: without Config.Instance an instance still has a
// name of its own.
func TestDefaultInstance(t *testing.T) {
	url := newDB(t)
	var names []string
	for range 2 {
		db, err := Open(context.Background(), Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		l, err := db.AcquireLease(state.BatchLease(fmt.Sprint(len(names))), time.Hour)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, l.Holder)
	}
	if names[0] == "" || names[0] == names[1] {
		t.Errorf("default instance names %q; want two distinct names", names)
	}
}

// staleApply applies batch B1 of acme through db with an outcome of
// status, its changes streamed by write.
func staleApply(db *DB, status string, write func(state.Writer) error) error {
	_, err := db.Apply("acme", func(*state.SnapshotTx) (state.Outcome, error) {
		return state.Outcome{Batch: state.Batch{ID: "B1", Org: "acme", Status: status}, Report: []byte(`{}`), Write: write}, nil
	})
	return err
}
