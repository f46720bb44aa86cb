package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/state"
)

// failingLeases refuses every lease with err.
type failingLeases struct{ err error }

func (f failingLeases) AcquireLease(string, time.Duration) (state.Lease, error) {
	return state.Lease{}, f.err
}
func (f failingLeases) RenewLease(l state.Lease, _ time.Duration) (state.Lease, error) {
	return l, f.err
}
func (f failingLeases) ReleaseLease(state.Lease) error { return nil }

// TestApproveLeaseErrors: an approval that cannot take the batch lease
// says why: ErrLeaseElsewhere when another instance holds it, the
// store's error (not "another instance") when asking for it failed.
func TestApproveLeaseErrors(t *testing.T) {
	down := errors.New("store down")
	for _, tc := range []struct {
		name      string
		err       error
		elsewhere bool
	}{
		{"held elsewhere", state.ErrLeaseHeld, true},
		{"store down", down, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testDB(t, "acme")
			orgs := filepath.Join(t.TempDir(), "orgs")
			if err := os.MkdirAll(filepath.Join(orgs, "acme"), 0o700); err != nil {
				t.Fatal(err)
			}
			id := ulid.Make().String()
			if _, err := db.CreateBatch(state.Batch{ID: id, Org: "acme", Status: state.BatchHeld, CreatedAt: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
			p, err := New(Config{DB: db, OrgsRoot: orgs, Leases: failingLeases{tc.err}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()

			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err = p.Approve(ctx, "acme", id)
				if !errors.Is(err, ErrNotRunning) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := errors.Is(err, ErrLeaseElsewhere); got != tc.elsewhere {
				t.Errorf("Approve = %v; ErrLeaseElsewhere %v, want %v", err, got, tc.elsewhere)
			}
			if tc.err == down && !errors.Is(err, down) {
				t.Errorf("Approve = %v; want the store's error", err)
			}
			if b, err := db.Batch("acme", id); err != nil || b.Status != state.BatchHeld {
				t.Errorf("batch after the refused approval = %+v, %v; want held", b, err)
			}
		})
	}
}

// TestApproveLostLease: an approval that reaches a loop whose lease is
// lost (its context ended; leased has not noticed yet) does not run the
// batch: another instance runs the organization's batches now.
func TestApproveLostLease(t *testing.T) {
	db := testDB(t, "acme")
	orgs := filepath.Join(t.TempDir(), "orgs")
	if err := os.MkdirAll(filepath.Join(orgs, "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
	id := ulid.Make().String()
	if _, err := db.CreateBatch(state.Batch{ID: id, Org: "acme", Status: state.BatchHeld, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{DB: db, OrgsRoot: orgs})
	if err != nil {
		t.Fatal(err)
	}
	l := p.loop("acme") // not running: the test is its loop
	lctx, cancel := context.WithCancel(context.Background())
	cancel()
	kept := make(chan error, 1)
	kept <- state.ErrLeaseLost
	l.lease = &loopLease{ctx: lctx, stop: cancel, kept: kept}

	_, err = l.approve(context.Background(), approveReq{batch: id})
	if !errors.Is(err, ErrLeaseElsewhere) {
		t.Errorf("approve with a lost lease = %v; want ErrLeaseElsewhere", err)
	}
	if b, err := db.Batch("acme", id); err != nil || b.Status != state.BatchHeld {
		t.Errorf("batch after the approval = %s, %v; want held, not run", b.Status, err)
	}
}
