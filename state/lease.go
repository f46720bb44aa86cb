package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Leases say which instance of a fleet runs an organization's batches
// (BatchLease), an endpoint's delivery to an organization
// (DeliveryLease) and the retention purge (RetentionLease), SPEC §11. A lease is held by one holder until it
// expires, renewed while its holder works; another instance takes it over
// once it has expired. Token grows at every acquisition: it fences the
// writes made under the lease, which a store shared by several instances
// (state/postgres) checks inside each writing transaction, so that a
// holder that lost its lease cannot commit.
//
// A bbolt store belongs to one process (Open takes a file lock), so
// state.DB's leases are that process's alone: always granted, kept in
// memory, fencing nothing. They exist so that the consumers take and
// keep leases the same way whichever store they run on.

// ErrLeaseHeld is returned when acquiring a lease another holder has and
// that has not expired (or whose holder is still writing under it).
var ErrLeaseHeld = errors.New("lease held by another instance")

// ErrLeaseLost is returned when renewing a lease, or writing under one,
// that its holder no longer has: another instance took it over, or it
// was released.
var ErrLeaseLost = errors.New("lease lost")

// Lease is one acquisition of a named lease.
type Lease struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
	// Token is the acquisition's fencing token: it grows at every
	// acquisition of Name, by any holder.
	Token     int64     `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// BatchLease is the name of the lease on org's batches.
func BatchLease(org string) string { return "batch:" + org }

// DeliveryLease is the name of the lease on endpoint's delivery to org.
// An organization's name has no colon (SPEC §3), so the name parses at
// its last one.
func DeliveryLease(endpoint, org string) string { return "delivery:" + endpoint + ":" + org }

// RetentionLease is the name of the lease on the retention purge of the
// events feed (SPEC §7): one instance of a fleet purges at a time.
const RetentionLease = "retention"

// ParseLease returns what a lease name guards: kind "batch" with org,
// "delivery" with endpoint and org, or "retention"; ok is false for any
// other name.
func ParseLease(name string) (kind, endpoint, org string, ok bool) {
	if name == RetentionLease {
		return "retention", "", "", true
	}
	if org, ok := strings.CutPrefix(name, "batch:"); ok {
		return "batch", "", org, true
	}
	if rest, ok := strings.CutPrefix(name, "delivery:"); ok {
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			return "delivery", rest[:i], rest[i+1:], true
		}
	}
	return "", "", "", false
}

// leaseTable is a state.DB's leases: in memory, for one process.
type leaseTable struct {
	mu     sync.Mutex
	leases map[string]Lease // by name; a released lease stays, expired
}

// localHolder is the holder of every lease of a bbolt store.
const localHolder = "local"

// AcquireLease takes the lease name for ttl. A bbolt store's process is
// its only instance: the lease is always granted, with a new token.
func (db *DB) AcquireLease(name string, ttl time.Duration) (Lease, error) {
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leases == nil {
		t.leases = map[string]Lease{}
	}
	l := Lease{Name: name, Holder: localHolder, Token: t.leases[name].Token + 1, ExpiresAt: db.now().UTC().Add(ttl)}
	t.leases[name] = l
	return l, nil
}

// RenewLease extends l for ttl from now; ErrLeaseLost when l is not the
// lease's current acquisition (acquired again, or released).
func (db *DB) RenewLease(l Lease, ttl time.Duration) (Lease, error) {
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.leases[l.Name]
	if !ok || cur.Token != l.Token || cur.Holder != l.Holder {
		return Lease{}, fmt.Errorf("renew lease %s: %w", l.Name, ErrLeaseLost)
	}
	cur.ExpiresAt = db.now().UTC().Add(ttl)
	t.leases[l.Name] = cur
	return cur, nil
}

// ReleaseLease gives l up: the lease is free (no holder, expired now).
// Releasing a lease no longer held does nothing.
func (db *DB) ReleaseLease(l Lease) error {
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.leases[l.Name]
	if ok && cur.Token == l.Token && cur.Holder == l.Holder {
		cur.Holder, cur.ExpiresAt = "", db.now().UTC()
		t.leases[l.Name] = cur
	}
	return nil
}

// Leases returns every lease acquired (expired and released ones too:
// a released lease has no holder), by name.
func (db *DB) Leases() ([]Lease, error) {
	t := &db.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Lease, 0, len(t.leases))
	for _, l := range t.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// LeaseRenewer renews leases: state.DB and the PostgreSQL store.
type LeaseRenewer interface {
	RenewLease(l Lease, ttl time.Duration) (Lease, error)
}

// KeepLease renews l every third of ttl until ctx is done (it returns
// ctx's error) or the lease is lost: it returns ErrLeaseLost when a
// renewal says so, or when renewals have failed for other reasons (the
// store out of reach) for ttl since the last one that succeeded, since
// another instance may take the lease over by then. The holder stops its
// work under the lease when KeepLease returns; in a fenced store, its
// writes fail from the takeover on anyway.
func KeepLease(ctx context.Context, s LeaseRenewer, l Lease, ttl time.Duration) error {
	t := time.NewTicker(max(ttl/3, time.Millisecond))
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		nl, err := s.RenewLease(l, ttl)
		switch {
		case err == nil:
			l, last = nl, time.Now()
		case errors.Is(err, ErrLeaseLost):
			return err
		case time.Since(last) >= ttl:
			return fmt.Errorf("keep lease %s: not renewed for %v (%v): %w", l.Name, ttl, err, ErrLeaseLost)
		}
	}
}
