package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/ingest/ingesttest"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The same uploads through a pipeline on each store: bbolt and
// PostgreSQL must record the same batches, emit the same events byte for
// byte (but for ids, times and batch ids) and end with the same snapshot.

// readStore is what the tests read of either store beside Store.
type readStore interface {
	Store
	CreateOrg(o state.Org) error
	ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error
	Users(org, stateFilter, after string, limit int) ([]json.RawMessage, error)
	Groups(org, after string, limit int) ([]json.RawMessage, error)
	GroupUsers(org, groupID, after string, limit int) ([]json.RawMessage, error)
	SnapshotCounts(org string) (state.SnapshotCounts, error)
}

// storeEnv is a pipeline on one store.
type storeEnv struct {
	t      *testing.T
	name   string
	db     readStore
	p      *Pipeline
	org    string
	orgDir string
	done   chan error
	cancel context.CancelFunc
	seen   map[string]bool // batches already returned
	after  string          // the last event read
}

func newStoreEnv(t *testing.T, kind, org string, st state.Settings, d Defaults, tune func(*Config)) *storeEnv {
	t.Helper()
	root := t.TempDir()
	var db readStore
	switch kind {
	case "bbolt":
		b, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		db = b
	case "postgres":
		url := pgtest.NewDatabase(t)
		pg, err := postgres.Open(context.Background(), postgres.Config{URL: url, ReplicaDir: filepath.Join(root, "replica")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		db = pg
	}
	if err := db.CreateOrg(state.Org{Name: org, Settings: st}); err != nil {
		t.Fatal(err)
	}
	e := &storeEnv{t: t, name: kind, db: db, org: org, orgDir: filepath.Join(root, "orgs", org), seen: map[string]bool{}}
	if err := os.MkdirAll(filepath.Join(e.orgDir, "reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DB: db, OrgsRoot: filepath.Join(root, "orgs"), Defaults: d}
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.p, e.cancel, e.done = p, cancel, make(chan error, 1)
	go func() { e.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-e.done; err != nil {
			t.Errorf("%s: Run: %v", kind, err)
		}
	})
	return e
}

// upload places the files and waits for the batch they make to reach its
// outcome.
func (e *storeEnv) upload(files map[string]string) state.Batch {
	e.t.Helper()
	// In name order, the same for both stores: when two files of one kind
	// come in one step (Users.CSV beside users.csv), the one completed
	// later wins, and a map's order would make that differ between them.
	var names []string
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		data := files[name]
		tmp := filepath.Join(e.orgDir, ".in."+name)
		if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
			e.t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(e.orgDir, name)); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, name := range names {
		e.p.Notify(e.org, name)
	}
	return e.next()
}

// next waits for a batch not returned before to reach its outcome.
func (e *storeEnv) next() state.Batch {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		bs, err := e.db.Batches(e.org, "", 0)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, b := range bs {
			if e.seen[b.ID] || b.Status == state.BatchPending || b.Status == state.BatchProcessing {
				continue
			}
			e.seen[b.ID] = true
			return b
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("%s: no batch reached its outcome within a minute", e.name)
	return state.Batch{}
}

var (
	reEventID = regexp.MustCompile(`"id":"evt_[0-9A-Z]{26}"`)
	reCreated = regexp.MustCompile(`"created_at":"[^"]*"`)
	reBatchID = regexp.MustCompile(`"batch_id":"[^"]*"`)
)

// events returns the events since the last call, their ids, times and
// batch ids blanked.
func (e *storeEnv) events() []string {
	e.t.Helper()
	var out []string
	err := e.db.ForEachEventJSON(e.org, e.after, 0, func(id string, raw []byte) error {
		e.after = id
		s := reEventID.ReplaceAllString(string(raw), `"id":"evt"`)
		s = reCreated.ReplaceAllString(s, `"created_at":"T"`)
		out = append(out, reBatchID.ReplaceAllString(s, `"batch_id":"B"`))
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// snapshot returns the snapshot as the API reads it.
func (e *storeEnv) snapshot() []string {
	e.t.Helper()
	var out []string
	us, err := e.db.Users(e.org, "", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range us {
		out = append(out, string(u))
	}
	gs, err := e.db.Groups(e.org, "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range gs {
		out = append(out, string(g))
		var d struct{ ID string }
		if err := json.Unmarshal(g, &d); err != nil {
			e.t.Fatal(err)
		}
		ms, err := e.db.GroupUsers(e.org, d.ID, "", 0)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range ms {
			var u struct{ ID string }
			json.Unmarshal(m, &u)
			out = append(out, "member "+d.ID+" "+u.ID)
		}
	}
	c, err := e.db.SnapshotCounts(e.org)
	if err != nil {
		e.t.Fatal(err)
	}
	return append(out, fmt.Sprintf("counts %+v", c))
}

// storePair runs the same steps on both stores and compares them.
type storePair struct {
	t    *testing.T
	envs [2]*storeEnv
}

func newStorePair(t *testing.T, st state.Settings, d Defaults, tune func(*Config)) *storePair {
	return &storePair{t: t, envs: [2]*storeEnv{
		newStoreEnv(t, "bbolt", "acme", st, d, tune),
		newStoreEnv(t, "postgres", "acme", st, d, tune),
	}}
}

// batchSummary is what both stores must agree on of a batch.
type batchSummary struct {
	Status, Reason   string
	Changes          state.BatchChanges
	Counts           state.BatchCounts
	Errors, Warnings int
	Approved         bool
}

func summary(b state.Batch) batchSummary {
	return batchSummary{b.Status, b.Reason, b.Changes, b.Counts, b.Errors, b.Warnings, b.Approved}
}

// step runs fn on each store and checks that they agree; it returns the
// batch and the events of the first (bbolt).
func (sp *storePair) step(what string, fn func(e *storeEnv) state.Batch) (state.Batch, []string) {
	sp.t.Helper()
	var bs [2]state.Batch
	var evs, snaps [2][]string
	for i, e := range sp.envs {
		bs[i] = fn(e)
		evs[i], snaps[i] = e.events(), e.snapshot()
	}
	if d := cmp.Diff(summary(bs[0]), summary(bs[1])); d != "" {
		var reps [2][]byte
		for i, e := range sp.envs {
			reps[i], _ = e.db.BatchReport(e.org, bs[i].ID)
		}
		sp.t.Fatalf("%s: batch (-bbolt +postgres):\n%s\nbbolt's report:\n%s\npostgres's report:\n%s", what, d, reps[0], reps[1])
	}
	if d := cmp.Diff(evs[0], evs[1]); d != "" {
		sp.t.Fatalf("%s: events (-bbolt +postgres):\n%s", what, d)
	}
	if d := cmp.Diff(snaps[0], snaps[1]); d != "" {
		sp.t.Fatalf("%s: snapshot (-bbolt +postgres):\n%s", what, d)
	}
	return bs[0], evs[0]
}

func (sp *storePair) upload(what string, files map[string]string) (state.Batch, []string) {
	sp.t.Helper()
	return sp.step(what, func(e *storeEnv) state.Batch { return e.upload(files) })
}

// eventTypes returns the types of evs in order.
func eventTypes(evs []string) []string {
	var out []string
	for _, ev := range evs {
		var e struct{ Event string }
		json.Unmarshal([]byte(ev), &e)
		out = append(out, e.Event)
	}
	return out
}

// TestStoresAgreeOnSPEC6 walks SPEC §6's scenarios on both stores: a
// first upload with groups and custom attributes; updates (with
// previous_attributes), a deactivation, memberships added and removed,
// groups updated and deleted; a deletion; the deletion guard holding a
// batch and its approval; an identical upload.
func TestStoresAgreeOnSPEC6(t *testing.T) {
	sp := newStorePair(t, state.Settings{}, Defaults{Settle: 100 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 2, InactiveUsers: "keep"}, nil)
	var users strings.Builder
	users.WriteString("user_id,email,first_name,last_name,job_title,state,custom:preferred_language\n")
	for i := range 12 {
		fmt.Fprintf(&users, "E%02d,e%02d@acme.test,Zoë %d,\"Ñame, %d\",Title %d,active,fr\n", i, i, i, i, i%3)
	}
	day1 := map[string]string{
		"groups.csv":      "group_id,group_name,description,custom:cost_center\ng-eng,Engineering,Builds it,CC1\ng-ops,Operations,Runs it,CC2\ng-old,Old,Going away,\n",
		"users.csv":       users.String(),
		"user_groups.csv": "group_name,user_id\nEngineering,E00\nEngineering,E01\nOperations,E02\nOld,E03\nSales,E04\n",
	}
	b, evs := sp.upload("day 1", day1)
	if b.Status != state.BatchApplied || b.Changes.UsersCreated != 12 || len(evs) == 0 {
		rep, _ := sp.envs[0].db.BatchReport("acme", b.ID)
		t.Fatalf("day 1: %s %+v, %d events\n%s", b.Status, b.Changes, len(evs), rep)
	}

	// Day 2: E00's title and language change, E01 is deactivated, E05's
	// email changes; E03 leaves Old, which goes, E04 moves to Operations;
	// Engineering's description changes.
	u2 := strings.Replace(users.String(), "E00,e00@acme.test,Zoë 0,\"Ñame, 0\",Title 0,active,fr", "E00,e00@acme.test,Zoë 0,\"Ñame, 0\",Chief,active,de", 1)
	u2 = strings.Replace(u2, "E01,e01@acme.test,Zoë 1,\"Ñame, 1\",Title 1,active,fr", "E01,e01@acme.test,Zoë 1,\"Ñame, 1\",Title 1,inactive,fr", 1)
	u2 = strings.Replace(u2, "e05@acme.test", "e05@new.acme.test", 1)
	b, evs = sp.upload("day 2", map[string]string{
		"groups.csv":      "group_id,group_name,description,custom:cost_center\ng-eng,Engineering,Builds and ships it,CC1\ng-ops,Operations,Runs it,CC2\n",
		"users.csv":       u2,
		"user_groups.csv": "group_name,user_id\nEngineering,E00\nEngineering,E01\nOperations,E02\nOperations,E04\nSales,E04\n",
	})
	if b.Status != state.BatchApplied || b.Changes.UsersUpdated != 2 || b.Changes.UsersDeactivated != 1 || b.Changes.GroupsDeleted != 1 {
		t.Fatalf("day 2: %s %+v", b.Status, b.Changes)
	}
	if !strings.Contains(strings.Join(evs, "\n"), `"previous_attributes":{"job_title":"Title 0","custom_attributes":{"custom:preferred_language":"fr"}}`) {
		t.Errorf("day 2: no previous_attributes for E00 in\n%s", strings.Join(evs, "\n"))
	}

	// Day 3: E11 leaves (a deletion, and its memberships first).
	u3 := u2[:strings.Index(u2, "E11,")]
	b, evs = sp.upload("day 3", map[string]string{"users.csv": u3})
	if b.Status != state.BatchApplied || b.Changes.UsersDeleted != 1 {
		t.Fatalf("day 3: %s %+v", b.Status, b.Changes)
	}

	// Day 4: half the users gone: held; then approved.
	u4 := u3[:strings.Index(u3, "E05,")]
	b, _ = sp.upload("day 4", map[string]string{"users.csv": u4})
	if b.Status != state.BatchHeld {
		t.Fatalf("day 4: %s, want held", b.Status)
	}
	_, evs = sp.step("day 4 approved", func(e *storeEnv) state.Batch {
		var id string
		bs, _ := e.db.Batches(e.org, "", 0)
		for _, b := range bs {
			if b.Status == state.BatchHeld {
				id = b.ID
			}
		}
		b, err := e.p.Approve(context.Background(), e.org, id)
		if err != nil {
			t.Fatalf("%s: approve: %v", e.name, err)
		}
		return b
	})
	if got := eventTypes(evs); len(got) == 0 || got[len(got)-1] != state.EventUserDeleted {
		t.Errorf("approved: events %v", got)
	}

	// The same files again: unchanged, no events.
	b, evs = sp.upload("day 4 again", map[string]string{"users.csv": u4 + "\n"})
	if b.Status != state.BatchUnchanged || len(evs) != 0 {
		t.Errorf("identical upload: %s, %d events", b.Status, len(evs))
	}
}

// TestStoresAgreeDerivedAndInactiveDelete: groups derived from users.csv
// columns, and an organization that deletes inactive users.
func TestStoresAgreeDerivedAndInactiveDelete(t *testing.T) {
	st := state.Settings{InactiveUsers: "delete", GroupsFromColumns: []state.GroupColumn{{Column: "department_name"}, {Column: "custom:teams", Separator: ";"}}}
	sp := newStorePair(t, st, Defaults{Settle: 100 * time.Millisecond, DeleteThresholdPercent: 50, DeleteThresholdCount: 10, InactiveUsers: "keep"}, nil)
	users := "user_id,email,first_name,last_name,department_name,state,custom:teams\n" +
		"A1,a1@x.test,A,One,Sales,active,red;blue\nA2,a2@x.test,A,Two,Sales,active,blue\nA3,a3@x.test,A,Three,R&D,active,\nA4,a4@x.test,A,Four,R&D,inactive,red\n"
	b, evs := sp.upload("derived day 1", map[string]string{"users.csv": users})
	if b.Status != state.BatchApplied || !strings.Contains(strings.Join(evs, "\n"), `"name":"blue"`) {
		t.Fatalf("derived day 1: %s %+v (%s)", b.Status, b.Changes, b.Reason)
	}
	users = strings.Replace(users, "A2,a2@x.test,A,Two,Sales,active,blue", "A2,a2@x.test,A,Two,R&D,inactive,blue", 1)
	users = strings.Replace(users, "A3,a3@x.test,A,Three,R&D,active,", "A3,a3@x.test,A,Three,R&D,active,green", 1)
	b, _ = sp.upload("derived day 2", map[string]string{"users.csv": users})
	if b.Status != state.BatchApplied {
		t.Fatalf("derived day 2: %s %+v (%s)", b.Status, b.Changes, b.Reason)
	}
}

// TestStoresAgreeRandom: the fault tests' random uploads of every kind,
// valid and not, one batch at a time, on both stores.
func TestStoresAgreeRandom(t *testing.T) {
	sp := newStorePair(t, state.Settings{UsersPatterns: ingesttest.UsersPatterns}, Defaults{Settle: 100 * time.Millisecond, DeleteThresholdPercent: 100, DeleteThresholdCount: 1000, InactiveUsers: "keep"}, nil)
	gen := ingesttest.NewGenerator(rand.New(rand.NewPCG(16, 20)))
	outcomes, events := map[string]int{}, 0
	for n := range 40 {
		ups := gen.Step(n)
		files := map[string]string{}
		for _, u := range ups {
			files[u.Name] = string(u.Content)
		}
		b, evs := sp.upload(fmt.Sprintf("step %d", n), files)
		outcomes[b.Status]++
		events += len(evs)
	}
	if outcomes[state.BatchApplied] < 10 || outcomes[state.BatchRejected] == 0 || events < 50 {
		t.Errorf("the random uploads made %v batches and %d events: too few to compare", outcomes, events)
	}
}

// TestStoresAgreeStaged: large batches (staged on bbolt, through
// temporary tables on PostgreSQL) on a snapshot that is not empty.
func TestStoresAgreeStaged(t *testing.T) {
	sp := newStorePair(t, state.Settings{}, Defaults{Settle: 100 * time.Millisecond, DeleteThresholdPercent: 100, DeleteThresholdCount: 100000, InactiveUsers: "keep"},
		func(c *Config) { c.StageAbove, c.StageTxChanges = 10, 64 })
	files := func(n, shift int) map[string]string {
		var u, m strings.Builder
		u.WriteString("user_id,email,first_name,last_name,job_title\n")
		m.WriteString("group_name,user_id\n")
		for i := shift; i < n+shift; i++ {
			fmt.Fprintf(&u, "U%05d,u%05d@x.test,F,L,T%d\n", i, i, (i+shift)%4)
			fmt.Fprintf(&m, "G%d,U%05d\nAll,U%05d\n", i%7, i, i)
		}
		return map[string]string{"users.csv": u.String(), "user_groups.csv": m.String()}
	}
	sp.upload("staged day 1", files(3000, 0))
	b, _ := sp.upload("staged day 2", files(3000, 500))
	if b.Changes.UsersCreated != 500 || b.Changes.UsersDeleted != 500 {
		t.Fatalf("staged day 2: %+v", b.Changes)
	}
}
