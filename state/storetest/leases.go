package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// testLeases: one instance's leases: every acquisition a greater token,
// renewal of the current one only, release frees the lease. (Takeover
// and fencing need two instances on one store: state/postgres tests
// them.)
func testLeases(t *testing.T, h Harness, s Store) {
	name := state.BatchLease("acme")
	before := time.Now()
	l1, err := s.AcquireLease(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if l1.Name != name || l1.Holder == "" || l1.Token < 1 {
		t.Errorf("AcquireLease = %+v; want %s with a holder and a token", l1, name)
	}
	within(t, "ExpiresAt", l1.ExpiresAt, before.Add(time.Hour-time.Minute), time.Now().Add(time.Hour+time.Minute))
	l2, err := s.AcquireLease(name, time.Hour)
	if err != nil || l2.Token <= l1.Token || l2.Holder != l1.Holder {
		t.Fatalf("AcquireLease again = %+v, %v; want the same holder, a greater token than %d", l2, err, l1.Token)
	}
	if _, err := s.RenewLease(l1, time.Hour); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("RenewLease of the earlier acquisition = %v; want ErrLeaseLost", err)
	}
	r, err := s.RenewLease(l2, 2*time.Hour)
	if err != nil || r.Token != l2.Token || !r.ExpiresAt.After(l2.ExpiresAt) {
		t.Errorf("RenewLease(2h) = %+v, %v; want token %d, a later expiry than %v", r, err, l2.Token, l2.ExpiresAt)
	}
	other, err := s.AcquireLease(state.DeliveryLease("hook", "acme"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leases()
	if err != nil || len(ls) != 2 || ls[0].Name != name || ls[0].Token != l2.Token || !ls[0].ExpiresAt.Equal(r.ExpiresAt) ||
		ls[1].Name != other.Name {
		t.Errorf("Leases() = %+v, %v; want %s (token %d, expiring %v) and %s", ls, err, name, l2.Token, r.ExpiresAt, other.Name)
	}
	if err := s.ReleaseLease(l2); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(l1); err != nil {
		t.Errorf("ReleaseLease of an earlier acquisition = %v; want nil", err)
	}
	if _, err := s.RenewLease(l2, time.Hour); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("RenewLease after release = %v; want ErrLeaseLost", err)
	}
	ls, _ = s.Leases()
	if len(ls) != 2 || ls[0].Holder != "" || ls[0].ExpiresAt.After(time.Now()) {
		t.Errorf("Leases() after release = %+v; want %s without a holder, expired", ls, name)
	}
	l3, err := s.AcquireLease(name, time.Hour)
	if err != nil || l3.Token <= l2.Token {
		t.Errorf("AcquireLease after release = %+v, %v; want a token greater than %d", l3, err, l2.Token)
	}
}
