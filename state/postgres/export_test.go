package postgres

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// TestExportRoundTrip: a bbolt store copied into PostgreSQL (Import) and
// back into a new bbolt store (Export) reads back the same at each step,
// area by area and organization by organization (state.ContentHash), and
// the bbolt copy goes on where PostgreSQL left off: later event ids and
// audit ids, a new batch supersedes the held one, a reopen seeds nothing.
func TestExportRoundTrip(t *testing.T) {
	src := boltFixture(t)
	pg := openTest(t)
	rep, err := pg.Import(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rosterd.db")
	back, err := state.Open(path, &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var exp ImportReport
	err = back.Import(func(w *state.Importer) error {
		exp, err = pg.Export(context.Background(), w)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(rep.Orgs, exp.Orgs) {
		t.Errorf("Export named organizations %v; Import %v", exp.Orgs, rep.Orgs)
	}
	delete(rep.Counts, "secrets")
	if diff := cmp.Diff(rep.Counts, exp.Counts); diff != "" {
		t.Errorf("Export counts (-import +export):\n%s", diff)
	}
	check := func(step string, db *state.DB) {
		t.Helper()
		for _, org := range rep.Orgs {
			want, err := state.ContentHash(src, org)
			if err != nil {
				t.Fatal(err)
			}
			for name, r := range map[string]state.ContentReader{"postgres": pg, "bbolt copy": db} {
				got, err := state.ContentHash(r, org)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: content of %s (-bbolt +%s):\n%s", step, org, name, diff)
				}
			}
		}
		for _, org := range rep.Orgs {
			// What retention removed stays removed (the commits' first
			// retained event), which content hashes do not see.
			want, _ := pg.CountEvents(org, "")
			if got, err := db.CountEvents(org, ""); err != nil || got != want {
				t.Errorf("%s: CountEvents(%s) = %d, %v; want %d", step, org, got, err, want)
			}
		}
		eps, err := db.Endpoints()
		if err != nil || len(eps) != 2 || !eps[1].Disabled || eps[1].DisabledReason != "410 Gone" {
			t.Errorf("%s: Endpoints() = %+v, %v; want wh:1 and wh_2 disabled", step, eps, err)
		}
	}
	check("export", back)

	// Reopened (Open seeds completions, migrates): still the same.
	if err := back.Close(); err != nil {
		t.Fatal(err)
	}
	back, err = state.Open(path, &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	check("reopen", back)

	// Into a store that is not empty: refused.
	if err := back.Import(func(*state.Importer) error { return nil }); !errors.Is(err, state.ErrNotEmpty) {
		t.Errorf("Import into a used bbolt store = %v; want ErrNotEmpty", err)
	}

	// The copy goes on: new events after the copied ones (retention
	// removed some), audit ids after the copied ones, a new batch
	// supersedes the held one.
	last, _ := pg.LastEventID()
	if _, err := back.FormBatch(state.Batch{ID: "B5", Org: "acme", Status: state.BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := back.Batch("acme", "B3"); got.Status != state.BatchSuperseded {
		t.Errorf("held B3 after forming B5 = %s; want superseded", got.Status)
	}
	err = back.ApplyBatch(state.Batch{ID: "B5", Org: "acme", Status: state.BatchApplied}, nil, func(a *state.ApplyTx) error {
		if err := a.DeleteUser([]byte("u3")); err != nil {
			return err
		}
		_, err := a.Emit(state.EventUserDeleted, []byte(`{"id":"u3"}`))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := back.Events("acme", last, 0)
	if err != nil || len(evs) != 1 || evs[0].ID <= last {
		t.Errorf("events after the copy = %+v, %v; want one, after %s", evs, err, last)
	}
	if c, _ := back.SnapshotCounts("acme"); c != (state.SnapshotCounts{Users: 2, Active: 2, Groups: 1, Memberships: 2}) {
		t.Errorf("acme's counts after an apply on the copy = %+v", c)
	}
	before, _ := back.AuditRecords("acme", "", 0, state.OldestFirst)
	if err := back.AppendAudit([]state.AuditRecord{{Org: "acme", Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Event: "login"}}, 0); err != nil {
		t.Fatal(err)
	}
	after, _ := back.AuditRecords("acme", "", 0, state.OldestFirst)
	if len(after) != len(before)+1 || after[len(after)-1].ID <= before[len(before)-1].ID {
		t.Errorf("audit after an append on the copy: %d then %d records, last id %s after %s", len(before), len(after),
			after[len(after)-1].ID, before[len(before)-1].ID)
	}
}

// TestExportAfterApply: a PostgreSQL store whose batches were applied on
// PostgreSQL (event records naming users and groups, not raw data)
// copies into bbolt with the same content, events byte for byte.
func TestExportAfterApply(t *testing.T) {
	db := openTest(t)
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, db, "acme", "B1", state.SnapshotCounts{}, []string{"u1", "u2", "u3"}, nil, nil, "Eng"); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, db, "acme", "B2", state.SnapshotCounts{Users: 3, Active: 3, Groups: 1, Memberships: 3},
		nil, []string{"u1"}, []string{"u3"}, "Ops"); err != nil {
		t.Fatal(err)
	}
	back, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	var rep ImportReport
	err = back.Import(func(w *state.Importer) error {
		rep, err = db.Export(context.Background(), w)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts["events"] != 9 || rep.Counts["users"] != 2 || rep.Counts["memberships"] != 2 {
		t.Errorf("Export counts %v; want 9 events, 2 users, 2 memberships", rep.Counts)
	}
	want, err := state.ContentHash(db, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got, err := state.ContentHash(back, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("content of acme (-postgres +bbolt):\n%s", diff)
	}
}
