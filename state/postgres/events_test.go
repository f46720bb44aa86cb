package postgres

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// TestEventIDMatchesState: the ids this package draws are state's, and
// the SQL function the events view uses computes the same.
func TestEventIDMatchesState(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	for _, tc := range []struct {
		ms, seq uint64
		i       uint32
	}{
		{0, 0, 0}, {1, 1, 1}, {1763773323456, 42, 7}, {1<<48 - 1, 1<<48 - 1, 1<<32 - 1}, {1 << 47, 1 << 47, 1 << 31},
	} {
		want := eventID(tc.ms, tc.seq, tc.i)
		var got string
		if err := db.pool.QueryRow(ctx, "SELECT rosterd.event_id($1, $2, $3)", int64(tc.ms), int64(tc.seq), int64(int32(tc.i))).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("rosterd.event_id(%d, %d, %d) = %s; want %s", tc.ms, tc.seq, tc.i, got, want)
		}
		seq, i, ok := parseEventID(want)
		if !ok || seq != tc.seq || i != tc.i {
			t.Errorf("parseEventID(%s) = %d, %d, %v; want %d, %d", want, seq, i, ok, tc.seq, tc.i)
		}
	}
	// state's own ids parse here: one event through bbolt.
	bolt := openBolt(t)
	ids := emitBolt(t, bolt, "acme", "b1", func(a *state.ApplyTx) error {
		_, err := a.Emit(state.EventUserCreated, []byte(`{}`))
		return err
	})
	if _, _, ok := parseEventID(ids[0]); !ok {
		t.Errorf("parseEventID(%s) of state's id failed", ids[0])
	}
}

func openBolt(t *testing.T) *state.DB {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// emitBolt applies one batch of org through fn and returns its event ids.
func emitBolt(t *testing.T, db *state.DB, org, batch string, fn func(*state.ApplyTx) error) []string {
	t.Helper()
	if _, err := db.Org(org); err != nil {
		if err := db.CreateOrg(state.Org{Name: org}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.CreateBatch(state.Batch{ID: batch, Org: org, Status: state.BatchPending}); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyBatch(state.Batch{ID: batch, Org: org, Status: state.BatchApplied}, []byte(`{}`), fn); err != nil {
		t.Fatal(err)
	}
	var ids []string
	err := db.ForEachEventJSON(org, "", 0, func(id string, _ []byte) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

var idAndTime = regexp.MustCompile(`^\{"id":"[^"]*",(.*),"created_at":"[^"]*",`)

// TestEventRenderMatchesState: events that name users and groups render
// byte for byte as state renders them, and the events view gives the same
// ids and data.
func TestEventRenderMatchesState(t *testing.T) {
	user := state.UserRecord{ID: "E1", Email: "ada@acme.example", FirstName: "Ada", LastName: "Lovelace <&>",
		Known:  []state.Attr{{Name: "job_title", Value: "Engineer"}, {Name: "manager_id", Value: "E0"}},
		Custom: []state.Attr{{Name: "lang", Value: "fr"}, {Name: "shirt", Value: "M"}}}
	rec := user.AppendBinary(nil)
	group := []byte(`{"object":"directory_group","id":"g1","organization_id":"acme","name":"Eng","attributes":{"floor":"3"}}`)
	prev := []byte(`{"job_title":"Intern","custom_attributes":{"lang":null}}`)

	bolt := openBolt(t)
	emitBolt(t, bolt, "acme", "b1", func(a *state.ApplyTx) error {
		steps := []func() error{
			func() error { return a.PutGroup([]byte("g1"), "Eng", state.GroupInFile, group) },
			func() error { return a.EmitGroup(state.EventGroupCreated, []byte("g1")) },
			func() error { return a.PutUser([]byte("E1"), true, rec) },
			func() error { return a.EmitUser(state.EventUserCreated, []byte("E1"), nil) },
			func() error { return a.EmitUser(state.EventUserUpdated, []byte("E1"), prev) },
			func() error { return a.AddMember([]byte("E1"), []byte("g1")) },
			func() error { return a.EmitMember(state.EventGroupUserAdded, []byte("E1"), []byte("g1")) },
			func() error { _, err := a.Emit(state.EventUserDeleted, []byte(`{"id":"raw"}`)); return err },
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
		return nil
	})
	var want []string
	bolt.ForEachEventJSON("", "", 0, func(_ string, raw []byte) error {
		want = append(want, idAndTime.ReplaceAllString(string(raw), `{$1,`))
		return nil
	})

	db := openTest(t)
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	ids, err := db.appendEvents("acme", "b1", []eventRecord{
		{Type: state.EventGroupCreated, GroupID: "g1"},
		{Type: state.EventUserCreated, UserID: "E1"},
		{Type: state.EventUserUpdated, UserID: "E1", Previous: prev},
		{Type: state.EventGroupUserAdded, UserID: "E1", GroupID: "g1"},
		{Type: state.EventUserDeleted, Data: []byte(`{"id":"raw"}`)},
	}, map[string][]byte{"E1": state.AppendUserJSON(nil, "acme", true, rec)}, map[string][]byte{"g1": group})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var data []json.RawMessage
	err = db.ForEachEventJSON("", "", 0, func(_ string, raw []byte) error {
		got = append(got, idAndTime.ReplaceAllString(string(raw), `{$1,`))
		var e state.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		data = append(data, e.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events rendered differently from state (-state +postgres):\n%s", diff)
	}

	// The view: the same ids, in position order, and the same data as
	// JSON values.
	rows, err := db.pool.Query(context.Background(), "SELECT id, event, organization_id, batch_id, data FROM rosterd.events ORDER BY position")
	if err != nil {
		t.Fatal(err)
	}
	type viewRow struct {
		ID, Event, Org, Batch string
		Data                  any
	}
	view, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (viewRow, error) {
		var v viewRow
		var d []byte
		err := r.Scan(&v.ID, &v.Event, &v.Org, &v.Batch, &d)
		if err == nil {
			err = json.Unmarshal(d, &v.Data)
		}
		return v, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wantView []viewRow
	for i, id := range ids {
		e, err := db.Event(id)
		if err != nil {
			t.Fatal(err)
		}
		var d any
		json.Unmarshal(data[i], &d)
		wantView = append(wantView, viewRow{id, e.Event, "acme", "b1", d})
	}
	if diff := cmp.Diff(wantView, view); diff != "" {
		t.Errorf("rosterd.events mismatch (-feed +view):\n%s", diff)
	}
}

// TestEventCommitOrderAcrossInstances: stores on one database (instances
// of a fleet) committing at once draw ids in commit order, so a follower
// paging with the last id it saw sees every event once, in id order.
func TestEventCommitOrderAcrossInstances(t *testing.T) {
	url := newDB(t)
	open := func() *DB {
		db, err := Open(context.Background(), Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b, reader := open(), open(), open()
	for _, org := range []string{"a", "b"} {
		if err := a.CreateOrg(state.Org{Name: org}); err != nil {
			t.Fatal(err)
		}
	}
	const batches, per = 25, 3
	var mu sync.Mutex
	var written []string
	var wg sync.WaitGroup
	for _, w := range []struct {
		db  *DB
		org string
	}{{a, "a"}, {b, "b"}} {
		wg.Go(func() {
			for i := range batches {
				recs := make([]eventRecord, per)
				for j := range recs {
					recs[j] = eventRecord{Type: state.EventUserCreated, Data: []byte(`{}`)}
				}
				ids, err := w.db.appendEvents(w.org, w.org+string(rune('A'+i)), recs, nil, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written = append(written, ids...)
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var seen []string
	after := ""
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		evs, err := reader.Events("", after, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			seen = append(seen, e.ID)
			after = e.ID
		}
		if finished && len(evs) == 0 {
			break
		}
	}
	if len(seen) != 2*batches*per {
		t.Errorf("the follower saw %d events; want %d", len(seen), 2*batches*per)
	}
	if !slices.IsSorted(seen) {
		t.Error("the follower saw ids out of order")
	}
	slices.Sort(written)
	if diff := cmp.Diff(written, seen); diff != "" {
		t.Errorf("the follower missed or repeated events (-written +seen):\n%s", diff)
	}
}
