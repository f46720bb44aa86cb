package postgres

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// boltFixture is a bbolt store with something in every area: three
// organizations (one removed, its events and cursor left), keys, setup
// links (one for an organization not yet created), audit records,
// batches in every state with reports, completions, a snapshot written by
// applies with their events (users, updates with previous attributes,
// groups, memberships, raw data), a commit partly purged, and delivery
// state with a retry, failed deliveries and a disabled endpoint.
func boltFixture(t *testing.T) *state.DB {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 22, 1, 2, 3, 456789123, time.UTC) // nanoseconds: bbolt keeps them
	retain := 4
	must(db.CreateOrg(state.Org{Name: "acme", CreatedAt: t0, Settings: state.Settings{DeleteThresholdCount: &retain, Settle: "2s"}}))
	must(db.CreateOrg(state.Org{Name: "beta"}))
	must(db.CreateOrg(state.Org{Name: "gone"}))
	must(db.AddKey("acme", state.Key{Fingerprint: "SHA256:a", Type: "ssh-ed25519", Comment: "ci", PublicKey: "ssh-ed25519 AAAA", CreatedAt: t0}))
	must(db.CreateSetupLink(state.SetupLink{ID: "sl_1", Org: "acme", TokenSHA256: "aa", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	must(db.CreateSetupLink(state.SetupLink{ID: "sl_2", Org: "newco", TokenSHA256: "bb", CreateOrg: true, ExpiresAt: time.Now().Add(time.Hour)}))
	if _, _, err := db.UseSetupLink("aa"); err == nil || !errors.Is(err, state.ErrLinkExpired) {
		must(err)
	}
	must(db.AppendAudit([]state.AuditRecord{{Org: "acme", Time: t0, Event: "login", RemoteAddr: "10.0.0.1:22", Duration: time.Second},
		{Org: "acme", Time: t0, Event: "upload", File: "users.csv", Bytes: 12}, {Org: "beta", Time: t0, Event: "login"}}, 0))

	apply := func(org, id string, fn func(a *state.ApplyTx) error) {
		t.Helper()
		_, err := db.FormBatch(state.Batch{ID: id, Org: org, Status: state.BatchPending,
			Files: []state.BatchFile{{Name: "users.csv", Kind: "users", CompletedAt: time.Now().UTC()}}}, nil)
		must(err)
		must(db.ApplyBatch(state.Batch{ID: id, Org: org, Status: state.BatchApplied}, []byte(`{"status": "applied"}`), fn))
	}
	user := func(id, email string, known, custom []state.Attr) []byte {
		r := state.UserRecord{ID: id, Email: email, FirstName: "F<" + id, LastName: "L&" + id, Known: known, Custom: custom}
		return r.AppendBinary(nil)
	}
	apply("acme", "B1", func(a *state.ApplyTx) error {
		for _, u := range []struct {
			id     string
			active bool
		}{{"u1", true}, {"u2", true}, {"u3", false}} {
			if err := a.PutUser([]byte(u.id), u.active, user(u.id, u.id+"@example.com",
				[]state.Attr{{Name: "username", Value: u.id}, {Name: "job_title", Value: "Eng \u2028"}},
				[]state.Attr{{Name: "Badge", Value: "1"}, {Name: "zone", Value: "é"}})); err != nil {
				return err
			}
			if err := a.EmitUser(state.EventUserCreated, []byte(u.id), nil); err != nil {
				return err
			}
		}
		if err := a.PutGroup([]byte("g1"), "Eng", state.GroupInFile, []byte(`{"object":"directory_group","id":"g1","name":"Eng"}`)); err != nil {
			return err
		}
		if err := a.EmitGroup(state.EventGroupCreated, []byte("g1")); err != nil {
			return err
		}
		for _, u := range []string{"u1", "u2"} {
			if err := a.AddMember([]byte(u), []byte("g1")); err != nil {
				return err
			}
			if err := a.EmitMember(state.EventGroupUserAdded, []byte(u), []byte("g1")); err != nil {
				return err
			}
		}
		return nil
	})
	apply("acme", "B2", func(a *state.ApplyTx) error {
		if err := a.PutUser([]byte("u1"), true, user("u1", "new@example.com", nil, nil)); err != nil {
			return err
		}
		if err := a.EmitUser(state.EventUserUpdated, []byte("u1"), []byte(`{"email":"u1@example.com"}`)); err != nil {
			return err
		}
		_, err := a.Emit("custom.event", []byte(`{"raw": true,  "n": [1, 2]}`))
		return err
	})
	apply("gone", "G1", func(a *state.ApplyTx) error {
		_, err := a.Emit(state.EventUserDeleted, []byte(`{"id":"x"}`))
		return err
	})
	// Batches in other states.
	_, err = db.FormBatch(state.Batch{ID: "B3", Org: "acme", Status: state.BatchPending}, nil)
	must(err)
	must(db.FinishBatch(state.Batch{ID: "B3", Org: "acme", Status: state.BatchHeld, Reason: "would delete 40 %"}, []byte(`{"status":"held"}`)))
	_, err = db.FormBatch(state.Batch{ID: "B4", Org: "beta", Status: state.BatchPending,
		Files: []state.BatchFile{{Name: "export.zip", Kind: "zip", Size: 3, CompletedAt: t0}}}, nil)
	must(err)
	retry := t0.Add(time.Minute)
	must(db.RecordFailure(state.Batch{ID: "B4", Org: "beta", Attempts: 2, LastError: "disk \x00 full", RetryAt: &retry}, []byte(`{"retry":1}`)))

	// Delivery: a cursor with a retry, failed deliveries, a disabled
	// endpoint, a cursor of the removed organization.
	evs, err := db.Events("", "", 0)
	must(err)
	if len(evs) != 9 {
		t.Fatalf("fixture has %d events; want 9", len(evs))
	}
	_, err = db.RegisterEndpoint("wh:1", "https://a.example/hook")
	must(err)
	_, err = db.RegisterEndpoint("wh_2", "https://b.example/hook")
	must(err)
	_, err = db.SetEndpointDisabled("wh_2", true, "410 Gone")
	must(err)
	must(db.SaveCursors(state.CursorUpdate{Endpoint: "wh:1", Org: "acme", Cursor: state.Cursor{After: evs[1].ID,
		Retry: &state.Retry{EventID: evs[2].ID, Attempts: 3, NextAt: t0, LastStatus: 500, LastError: "boom"}}},
		state.CursorUpdate{Endpoint: "wh:1", Org: "gone", Cursor: state.Cursor{After: evs[8].ID}}))
	// Retention takes acme's first two events: B1's commit is partly
	// purged. The removed organization's event stays.
	_, err = db.PurgeEvents(context.Background(), time.Now().Add(time.Hour), func(org string) (string, bool) {
		if org == "acme" {
			return evs[1].ID, true
		}
		return "", true
	})
	must(err)
	must(db.MarkFailed(state.FailedDelivery{Endpoint: "wh_2", EventID: evs[5].ID, Event: evs[5].Event, Org: "acme", Attempts: 8, LastStatus: 410, FailedAt: t0}))
	must(db.DeleteOrg("gone"))
	return db
}

// TestImport: a bbolt store copied into an empty PostgreSQL store reads
// back the same, area by area and organization by organization
// (state.ContentHash), and the copy goes on where bbolt left off: later
// event ids, audit ids after the copied ones.
func TestImport(t *testing.T) {
	src := boltFixture(t)
	dst := openTest(t)
	secrets := map[string][]byte{"api_token": []byte("tok"), "host_key/ssh_host_ed25519_key": []byte("-----BEGIN")}
	rep, err := dst.Import(context.Background(), src, secrets)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"acme", "beta", "gone", "newco"}; !cmp.Equal(want, rep.Orgs) {
		t.Errorf("Import named organizations %v; want %v", rep.Orgs, want)
	}
	wantCounts := map[string]int{"organization": 2, "keys": 1, "setup_links": 2, "audit": 3, "batches": 4, "completions": 4,
		"users": 3, "groups": 1, "memberships": 2, "events": 7, "endpoints": 2, "delivery": 4, "secrets": 2}
	if diff := cmp.Diff(wantCounts, rep.Counts); diff != "" {
		t.Errorf("Import counts (-want +got):\n%s", diff)
	}
	for _, org := range rep.Orgs {
		want, err := state.ContentHash(src, org)
		if err != nil {
			t.Fatal(err)
		}
		got, err := state.ContentHash(dst, org)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("content of %s (-bbolt +postgres):\n%s", org, diff)
		}
	}
	if h, _ := state.ContentHash(src, "acme"); h["events"].Count != 6 || h["users"].Count != 3 || h["delivery"].Count != 3 {
		t.Errorf("acme's content %+v; want 6 events, 3 users, delivery: 2 cursors and a failure", h)
	}
	if h, _ := state.ContentHash(src, "gone"); h["events"].Count != 1 || h["organization"].Count != 0 || h["delivery"].Count != 2 {
		t.Errorf("gone's content %+v; want its event and its cursors, no organization", h)
	}
	for _, db := range []interface {
		Endpoints() ([]state.EndpointState, error)
	}{src, dst} {
		eps, err := db.Endpoints()
		if err != nil || len(eps) != 2 || !eps[1].Disabled || eps[1].DisabledReason != "410 Gone" {
			t.Errorf("Endpoints() = %+v, %v; want wh:1 and wh_2 disabled", eps, err)
		}
	}
	if v, err := dst.Secret("api_token"); err != nil || string(v) != "tok" {
		t.Errorf("Secret(api_token) = %q, %v", v, err)
	}

	// New events follow the copied ones, even those retention removed.
	last, _ := src.LastEventID()
	ids, err := dst.appendEvents("acme", "B9", []eventRecord{{Type: state.EventUserCreated, Data: []byte(`{}`)}}, nil, nil)
	if err != nil || len(ids) != 1 || ids[0] <= last {
		t.Errorf("first event after the copy = %v, %v; want an id after %s", ids, err, last)
	}
	if err := dst.AppendAudit([]state.AuditRecord{{Org: "acme", Time: time.Now(), Event: "login"}}, 0); err != nil {
		t.Fatal(err)
	}
	recs, _ := dst.AuditRecords("acme", "", 0, state.OldestFirst)
	if len(recs) != 3 || !slices.IsSortedFunc(recs, func(a, b state.AuditRecord) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("audit after an append = %d records in id order? %v", len(recs), recs)
	}
	if _, err := dst.FormBatch(state.Batch{ID: "B5", Org: "acme", Status: state.BatchPending}, nil); err != nil {
		t.Errorf("FormBatch after the copy: %v", err)
	}
	if got, _ := dst.Batch("acme", "B3"); got.Status != state.BatchSuperseded {
		t.Errorf("held B3 after forming B5 = %s; want superseded", got.Status)
	}

	// Into a store that is not empty: refused, nothing written.
	if _, err := dst.Import(context.Background(), src, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Import into a used store = %v; want ErrNotEmpty", err)
	}
}
