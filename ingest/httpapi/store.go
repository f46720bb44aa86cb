package httpapi

import (
	"encoding/json"

	"github.com/rosterd/rosterd/state"
)

// Store is what the API reads and writes in rosterd's store, with
// state.DB's semantics: organizations and settings, keys, setup links,
// the audit trail, batch reads, snapshot reads (pages of JSON), the
// events feed and failed deliveries. Both state.DB (bbolt) and the
// PostgreSQL store (state/postgres) implement it; cmd/rosterd passes the
// one configured.
type Store interface {
	CreateOrg(o state.Org) error
	Org(name string) (state.Org, error)
	Orgs(after string, limit int) ([]state.Org, error)
	OrgCount() (int, error)
	UpdateOrg(name string, fn func(*state.Org) error) (state.Org, error)
	DeleteOrg(name string) error

	AddKey(org string, k state.Key) error
	Keys(org string) ([]state.Key, error)
	RemoveKey(org, fingerprint string) error

	CreateSetupLink(l state.SetupLink) error
	SetupLinks(org string) ([]state.SetupLink, error)
	RevokeSetupLink(org, id string) (state.SetupLink, error)
	UseSetupLink(tokenSHA256 string) (l state.SetupLink, created bool, err error)

	AppendAudit(recs []state.AuditRecord, keep int) error
	AuditRecords(org, after string, limit int, order state.AuditOrder) ([]state.AuditRecord, error)

	Batch(org, id string) (state.Batch, error)
	Batches(org, after string, limit int) ([]state.Batch, error)
	BatchReport(org, id string) (json.RawMessage, error)
	OpenBatches() ([]state.Batch, error)

	Users(org, stateFilter, after string, limit int) ([]json.RawMessage, error)
	User(org, id string) (json.RawMessage, error)
	UserGroups(org, userID, after string, limit int) ([]json.RawMessage, error)
	Groups(org, after string, limit int) ([]json.RawMessage, error)
	Group(org, id string) (json.RawMessage, error)
	GroupUsers(org, groupID, after string, limit int) ([]json.RawMessage, error)
	SnapshotCounts(org string) (state.SnapshotCounts, error)

	ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error
	FailedDeliveries(id, after string, limit int) ([]state.FailedDelivery, error)
}
