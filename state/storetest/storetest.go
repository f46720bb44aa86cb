// Package storetest is the contract test suite of rosterd's stores: the
// tests are written once, against the interfaces below, and run against
// every store (state.DB on bbolt in state's tests, postgres.DB in
// state/postgres's), so that the operations ingest and its servers call
// mean the same on each.
//
// The interfaces are the areas that both stores implement so far, with
// state.DB's method names and semantics; the documentation of each
// operation is state.DB's. Run takes a Harness that opens a new, empty
// store per test and commits events (which only applying a batch writes,
// an area the suite does not cover yet: the tests that use Emit write no
// batch records of their own).
//
// Caveat: PostgreSQL keeps times to the microsecond, bbolt to the
// nanosecond; the tests give times in whole microseconds and compare
// times the store makes within a window.
package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// Orgs are the organizations and their settings.
type Orgs interface {
	CreateOrg(o state.Org) error
	Org(name string) (state.Org, error)
	Orgs(after string, limit int) ([]state.Org, error)
	OrgCount() (int, error)
	UpdateOrg(name string, fn func(*state.Org) error) (state.Org, error)
	DeleteOrg(name string) error
}

// Keys are the organizations' public keys.
type Keys interface {
	AddKey(org string, k state.Key) error
	Keys(org string) ([]state.Key, error)
	RemoveKey(org, fingerprint string) error
	HasKey(org, fingerprint string) (bool, error)
}

// SetupLinks are the admins' setup links (SPEC §10).
type SetupLinks interface {
	CreateSetupLink(l state.SetupLink) error
	SetupLinks(org string) ([]state.SetupLink, error)
	RevokeSetupLink(org, id string) (state.SetupLink, error)
	UseSetupLink(tokenSHA256 string) (l state.SetupLink, created bool, err error)
}

// Audit is the organizations' audit trail.
type Audit interface {
	AppendAudit(recs []state.AuditRecord, keep int) error
	AuditRecords(org, after string, limit int, order state.AuditOrder) ([]state.AuditRecord, error)
}

// EventFeed reads the events (SPEC §6, §8).
type EventFeed interface {
	ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error
	Events(org, after string, limit int) ([]state.Event, error)
	Event(id string) (state.Event, error)
	EventJSON(id string) (json.RawMessage, error)
	LastEventID() (string, error)
	CountEvents(org, after string) (int, error)
}

// Delivery is the webhook delivery state (SPEC §7).
type Delivery interface {
	RegisterEndpoint(id, url string) (state.EndpointState, error)
	Endpoints() ([]state.EndpointState, error)
	Endpoint(id string) (state.EndpointState, error)
	SetEndpointDisabled(id string, disabled bool, reason string) (state.EndpointState, error)
	Cursors(id string) (map[string]state.Cursor, error)
	Cursor(id, org string) (state.Cursor, error)
	SaveCursors(updates ...state.CursorUpdate) error
	MarkFailed(f state.FailedDelivery) error
	FailedDeliveries(id, after string, limit int) ([]state.FailedDelivery, error)
	FailedDelivery(id, event string) (state.FailedDelivery, error)
	ClearFailed(id, event string) error
	CountFailed(id string) (int, error)
}

// Retention removes old events (SPEC §7).
type Retention interface {
	PurgeEvents(ctx context.Context, before time.Time, keepAfter func(org string) (after string, ok bool)) (int, error)
}

// Batches are the batch records and their reports (SPEC §5).
type Batches interface {
	CreateBatch(b state.Batch) (superseded []string, err error)
	UpdateBatch(org, id string, fn func(*state.Batch) error) (state.Batch, error)
	FinishBatch(b state.Batch, report []byte) error
	RecordIgnored(b state.Batch, report []byte) error
	ReplaceBatchReport(org, id string, report []byte) error
	Batch(org, id string) (state.Batch, error)
	Batches(org, after string, limit int) ([]state.Batch, error)
	BatchReport(org, id string) (json.RawMessage, error)
	UnfinishedBatches() ([]state.Batch, error)
	OpenBatches() ([]state.Batch, error)
}

// CompletionOrder are the completions and the batch operations ingest
// calls as a batch goes from formed to final (SPEC §5: completion order).
type CompletionOrder interface {
	Completions(org string) (state.Completions, error)
	ForgetCompletions(org string, names []string) error
	FormBatch(b state.Batch, report func(superseded state.Batch) []byte) ([]state.Batch, error)
	RecordSetAside(b state.Batch, report []byte) error
	RecordArchived(org, id string, files []state.BatchFile) (state.Batch, error)
	RecordFailure(b state.Batch, report []byte) error
	SupersedeBatch(org, id, by string, report []byte) (state.Batch, error)
}

// SnapshotReads read an organization's directory (SPEC §6 objects), as
// the HTTP API does.
type SnapshotReads interface {
	Users(org, stateFilter, after string, limit int) ([]json.RawMessage, error)
	User(org, id string) (json.RawMessage, error)
	UserGroups(org, userID, after string, limit int) ([]json.RawMessage, error)
	Groups(org, after string, limit int) ([]json.RawMessage, error)
	Group(org, id string) (json.RawMessage, error)
	GroupUsers(org, groupID, after string, limit int) ([]json.RawMessage, error)
	SnapshotCounts(org string) (state.SnapshotCounts, error)
}

// Leases are the leases of a fleet's instances (SPEC §11).
type Leases interface {
	AcquireLease(name string, ttl time.Duration) (state.Lease, error)
	RenewLease(l state.Lease, ttl time.Duration) (state.Lease, error)
	ReleaseLease(l state.Lease) error
	Leases() ([]state.Lease, error)
}

// Store is every area the suite tests.
type Store interface {
	Orgs
	Keys
	SetupLinks
	Audit
	EventFeed
	Delivery
	Retention
	Batches
	CompletionOrder
	Leases
	SnapshotReads
}

// RawEvent is an event whose data is stored as given.
type RawEvent struct {
	Type string
	Data string
}

// Harness is how the suite uses a store.
type Harness struct {
	// Open returns a new, empty store, closed when t ends.
	Open func(t *testing.T) Store
	// Emit commits the events of batch of org (which exists), in order,
	// as applying the batch would, and returns their ids.
	Emit func(t *testing.T, s Store, org, batch string, events []RawEvent) []string
	// Snapshot writes snap as the directory of org (which exists and has
	// none yet), as applying a batch would.
	Snapshot func(t *testing.T, s Store, org string, snap Snapshot)
}

// Run runs the whole suite, each test in a subtest with a store of its
// own.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness, s Store)
	}{
		{"OrgCreateAndList", testOrgCreateAndList},
		{"OrgSettingsRoundTrip", testOrgSettingsRoundTrip},
		{"UpdateOrg", testUpdateOrg},
		{"DeleteOrg", testDeleteOrg},
		{"Keys", testKeys},
		{"SetupLinkCreate", testSetupLinkCreate},
		{"SetupLinkRevoke", testSetupLinkRevoke},
		{"SetupLinkUse", testSetupLinkUse},
		{"SetupLinkCreatesOrg", testSetupLinkCreatesOrg},
		{"AuditAppendAndPage", testAuditAppendAndPage},
		{"AuditKeep", testAuditKeep},
		{"AuditFields", testAuditFields},
		{"EventFeed", testEventFeed},
		{"EventFeedPaging", testEventFeedPaging},
		{"EventJSONVerbatim", testEventJSONVerbatim},
		{"CountEvents", testCountEvents},
		{"RegisterEndpoint", testRegisterEndpoint},
		{"Cursors", testCursors},
		{"FailedDeliveries", testFailedDeliveries},
		{"PurgeEvents", testPurgeEvents},
		{"PurgeEventsStops", testPurgeEventsStops},
		{"BatchRecord", testBatchRecord},
		{"BatchesPaging", testBatchesPaging},
		{"CreateBatchSupersedesHeld", testCreateBatchSupersedesHeld},
		{"UpdateBatch", testUpdateBatch},
		{"FinishBatch", testFinishBatch},
		{"BatchReports", testBatchReports},
		{"RecordIgnored", testRecordIgnored},
		{"UnfinishedAndOpenBatches", testUnfinishedAndOpenBatches},
		{"BatchesGoWithOrg", testBatchesGoWithOrg},
		{"FormBatch", testFormBatch},
		{"CompletionOrder", testCompletionOrder},
		{"RecordFailure", testRecordFailure},
		{"SupersedeBatch", testSupersedeBatch},
		{"RecordSetAside", testRecordSetAside},
		{"RecordArchived", testRecordArchived},
		{"RecordArchivedZipMembers", testRecordArchivedZipMembers},
		{"FormBatchConcurrent", testFormBatchConcurrent},
		{"Leases", testLeases},
		{"SnapshotReads", testSnapshotReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h, h.Open(t))
		})
	}
}
