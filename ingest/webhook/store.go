package webhook

import (
	"context"
	"encoding/json"
	"time"

	"github.com/rosterd/rosterd/state"
)

// Store is what a Deliverer needs of rosterd's store: the organizations,
// the events feed, the delivery state, retention and leases, with state.DB's
// semantics. Both state.DB (bbolt) and the PostgreSQL store
// (state/postgres) implement it; cmd/rosterd passes the one configured.
type Store interface {
	Orgs(after string, limit int) ([]state.Org, error)

	ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error
	EventJSON(id string) (json.RawMessage, error)
	CountEvents(org, after string) (int, error)

	RegisterEndpoint(id, url string) (state.EndpointState, error)
	Endpoint(id string) (state.EndpointState, error)
	SetEndpointDisabled(id string, disabled bool, reason string) (state.EndpointState, error)
	Cursor(id, org string) (state.Cursor, error)
	Cursors(id string) (map[string]state.Cursor, error)
	SaveCursors(updates ...state.CursorUpdate) error
	MarkFailed(f state.FailedDelivery) error
	FailedDelivery(id, event string) (state.FailedDelivery, error)
	ClearFailed(id, event string) error
	CountFailed(id string) (int, error)

	PurgeEvents(ctx context.Context, before time.Time, keepAfter func(org string) (after string, ok bool)) (int, error)

	// The leases on delivery and retention (SPEC §11): a fleet's
	// instances share the store and take turns.
	AcquireLease(name string, ttl time.Duration) (state.Lease, error)
	RenewLease(l state.Lease, ttl time.Duration) (state.Lease, error)
	ReleaseLease(l state.Lease) error
}
