package state

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestLeaseNames(t *testing.T) {
	for _, tc := range []struct {
		name                string
		kind, endpoint, org string
		ok                  bool
	}{
		{BatchLease("acme"), "batch", "", "acme", true},
		{DeliveryLease("hook", "acme"), "delivery", "hook", "acme", true},
		// An endpoint id may hold colons; an organization's name cannot.
		{DeliveryLease("wh:a:b", "acme-2"), "delivery", "wh:a:b", "acme-2", true},
		{RetentionLease, "retention", "", "", true},
		{"delivery:nocolon", "", "", "", false},
		{"other:acme", "", "", "", false},
	} {
		kind, ep, org, ok := ParseLease(tc.name)
		if kind != tc.kind || ep != tc.endpoint || org != tc.org || ok != tc.ok {
			t.Errorf("ParseLease(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tc.name, kind, ep, org, ok, tc.kind, tc.endpoint, tc.org, tc.ok)
		}
	}
}

// flaky fails the renewals of a store while fail is set.
type flaky struct {
	*DB
	fail    atomic.Bool
	renewed atomic.Int32
}

func (f *flaky) RenewLease(l Lease, ttl time.Duration) (Lease, error) {
	if f.fail.Load() {
		return Lease{}, errors.New("connection refused")
	}
	f.renewed.Add(1)
	return f.DB.RenewLease(l, ttl)
}

// TestKeepLease: KeepLease renews at a third of the ttl, keeps on through
// failures shorter than the ttl, and reports the lease lost when it is
// taken (acquired again) or when renewals failed for a whole ttl.
func TestKeepLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := &flaky{DB: openTestOrg(t, "acme")}
		const ttl = 30 * time.Second
		l, err := db.AcquireLease(BatchLease("acme"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- KeepLease(ctx, db, l, ttl) }()
		time.Sleep(ttl + time.Second)
		if n := db.renewed.Load(); n != 3 {
			t.Errorf("renewals in one ttl = %d; want 3", n)
		}
		// A failure shorter than the ttl: the lease is kept.
		db.fail.Store(true)
		time.Sleep(ttl - 11*time.Second)
		db.fail.Store(false)
		time.Sleep(ttl)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("KeepLease returned %v after a short failure", err)
		default:
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("KeepLease after cancel = %v; want context.Canceled", err)
		}

		// Taken (a new acquisition): lost at the next renewal.
		go func() { done <- KeepLease(t.Context(), db, l, ttl) }()
		if _, err := db.AcquireLease(BatchLease("acme"), ttl); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrLeaseLost) {
			t.Errorf("KeepLease of a lease taken over = %v; want ErrLeaseLost", err)
		}

		// Renewals failing for a whole ttl: lost.
		l, _ = db.AcquireLease(BatchLease("acme"), ttl)
		db.fail.Store(true)
		start := time.Now()
		go func() { done <- KeepLease(t.Context(), db, l, ttl) }()
		if err := <-done; !errors.Is(err, ErrLeaseLost) || time.Since(start) < ttl {
			t.Errorf("KeepLease with failing renewals = %v after %v; want ErrLeaseLost after %v", err, time.Since(start), ttl)
		}
	})
}
