package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// directStageTx, when not 0, makes applyDirect stage its applies in
// transactions of that many changes.
var directStageTx = 0

// applyDirect runs one batch through diff and apply without the loop, the
// archive or the reports: the differ's own path. It returns the outcome.
func applyDirect(t testing.TB, db *state.DB, org string, pol policy, files map[schema.Kind]string) (state.Batch, *diffResult) {
	t.Helper()
	var inputs []input
	for _, k := range []schema.Kind{schema.Users, schema.UserGroups, schema.Groups} {
		if data, ok := files[k]; ok {
			inputs = append(inputs, input{kind: k, name: string(k) + ".csv", open: func() (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader(data)), nil
			}})
		}
	}
	b := state.Batch{ID: ulid.Make().String(), Org: org, Status: state.BatchProcessing}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatal(err)
	}
	var r *diffResult
	err := db.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		var err error
		r, err = diff(s, pol, schema.Limits{}, inputs, t.TempDir())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	b.Status = state.BatchApplied
	var fn func(*state.ApplyTx) error
	switch {
	case r.errors() > 0:
		b.Status = state.BatchRejected
	case r.guardReason(pol) != "":
		b.Status = state.BatchHeld
	case r.empty():
		b.Status = state.BatchUnchanged
	default:
		fn = func(a *state.ApplyTx) error { return r.apply(a) }
	}
	b.Changes = r.changes
	if fn != nil && directStageTx > 0 {
		if err := db.ApplyBatchStaged(b, nil, directStageTx, fn); err != nil {
			t.Fatal(err)
		}
		return b, r
	}
	if err := db.ApplyBatch(b, nil, fn); err != nil {
		t.Fatal(err)
	}
	return b, r
}

// model is a snapshot as plain maps.
type model struct {
	Users   map[string]string // id -> JSON
	Groups  map[string]string // id -> JSON
	Members map[string]bool   // user id | group id
}

func compactJSON(raw []byte) string {
	var b bytes.Buffer
	json.Compact(&b, raw)
	return b.String()
}

func readModel(t testing.TB, db *state.DB, org string) model {
	t.Helper()
	m := model{Users: map[string]string{}, Groups: map[string]string{}, Members: map[string]bool{}}
	us, err := db.Users(org, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		var v struct{ ID string }
		json.Unmarshal(u, &v)
		m.Users[v.ID] = string(u)
	}
	gs, _ := db.Groups(org, "", 0)
	for _, g := range gs {
		var v struct{ ID string }
		json.Unmarshal(g, &v)
		m.Groups[v.ID] = string(g)
		members, _ := db.GroupUsers(org, v.ID, "", 0)
		for _, u := range members {
			var uv struct{ ID string }
			json.Unmarshal(u, &uv)
			m.Members[uv.ID+"|"+v.ID] = true
		}
	}
	return m
}

// replay applies events to a copy of m, failing on an event that does not
// fit (a create of something that exists, an update or delete of
// something that does not, a membership event that changes nothing).
func replay(t testing.TB, m model, evs []state.Event) model {
	t.Helper()
	out := model{Users: maps(m.Users), Groups: maps(m.Groups), Members: map[string]bool{}}
	for k := range m.Members {
		out.Members[k] = true
	}
	for _, e := range evs {
		var obj struct {
			ID    string          `json:"id"`
			User  json.RawMessage `json:"user"`
			Group json.RawMessage `json:"group"`
		}
		json.Unmarshal(e.Data, &obj)
		data := compactJSON(e.Data)
		switch e.Event {
		case state.EventUserCreated, state.EventGroupCreated:
			set := out.Users
			if e.Event == state.EventGroupCreated {
				set = out.Groups
			}
			if _, ok := set[obj.ID]; ok {
				t.Fatalf("%s of existing %s", e.Event, obj.ID)
			}
			set[obj.ID] = data
		case state.EventUserUpdated, state.EventGroupUpdated:
			set := out.Users
			if e.Event == state.EventGroupUpdated {
				set = out.Groups
			}
			if _, ok := set[obj.ID]; !ok {
				t.Fatalf("%s of missing %s", e.Event, obj.ID)
			}
			if i := strings.Index(data, `,"previous_attributes":`); i >= 0 {
				data = data[:i] + "}"
			}
			set[obj.ID] = data
		case state.EventUserDeleted, state.EventGroupDeleted:
			set := out.Users
			if e.Event == state.EventGroupDeleted {
				set = out.Groups
			}
			if _, ok := set[obj.ID]; !ok {
				t.Fatalf("%s of missing %s", e.Event, obj.ID)
			}
			for k := range out.Members {
				if strings.HasPrefix(k, obj.ID+"|") || strings.HasSuffix(k, "|"+obj.ID) {
					t.Fatalf("%s of %s before its membership %s ended", e.Event, obj.ID, k)
				}
			}
			delete(set, obj.ID)
		case state.EventGroupUserAdded, state.EventGroupUserRemoved:
			var u, g struct{ ID string }
			json.Unmarshal(obj.User, &u)
			json.Unmarshal(obj.Group, &g)
			k := u.ID + "|" + g.ID
			if out.Members[k] == (e.Event == state.EventGroupUserAdded) {
				t.Fatalf("%s of %s changes nothing", e.Event, k)
			}
			if e.Event == state.EventGroupUserAdded {
				out.Members[k] = true
			} else {
				delete(out.Members, k)
			}
		}
	}
	return out
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func batchEvents(t testing.TB, db *state.DB, org, batch string) []state.Event {
	t.Helper()
	evs, err := db.Events(org, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []state.Event
	for _, e := range evs {
		if e.BatchID == batch {
			out = append(out, e)
		}
	}
	return out
}

func testDB(t testing.TB, org string) *state.DB {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateOrg(state.Org{Name: org}); err != nil {
		t.Fatal(err)
	}
	return db
}

// randomFiles makes a small random batch from rng: users with attributes
// from a small pool (so that equal and different values both happen),
// memberships, and sometimes a groups.csv.
func randomFiles(rng *rand.Rand) map[schema.Kind]string {
	var users, members, groups strings.Builder
	users.WriteString("user_id,email,first_name,last_name,status,job_title,location\n")
	titles := []string{"", "Engineer", "Ingénieur", "Boss"}
	states := []string{"", "active", "inactive", "terminated"}
	n := rng.IntN(8)
	var ids []string
	for i := range 8 {
		if len(ids) == n {
			break
		}
		if rng.IntN(3) == 0 {
			continue
		}
		id := fmt.Sprintf("u%d", i)
		ids = append(ids, id)
		fmt.Fprintf(&users, "%s,%s@x.test,F%d,Ł%d,%s,%s,%s\n", id, id, rng.IntN(2), i, states[rng.IntN(4)], titles[rng.IntN(4)], titles[rng.IntN(4)])
	}
	files := map[schema.Kind]string{schema.Users: users.String()}
	gnames := []string{"Sales", "R&D", "Ünits", "Ops"}
	if rng.IntN(4) > 0 {
		members.WriteString("group_name,user_id\n")
		for _, id := range ids {
			for _, g := range gnames {
				if rng.IntN(3) == 0 {
					fmt.Fprintf(&members, "%s,%s\n", g, id)
				}
			}
		}
		files[schema.UserGroups] = members.String()
	}
	if rng.IntN(3) == 0 {
		groups.WriteString("group_name,group_id,description\n")
		for i, g := range gnames {
			if rng.IntN(2) == 0 {
				id := ""
				if rng.IntN(2) == 0 {
					id = fmt.Sprintf("g%d", i)
				}
				fmt.Fprintf(&groups, "%s,%s,%s\n", g, id, titles[rng.IntN(4)])
			}
		}
		files[schema.Groups] = groups.String()
	}
	return files
}

// FuzzDiff checks the differ on random pairs of snapshots: replaying the
// events of the second batch on the first snapshot gives the stored
// second snapshot, and its users and memberships are those of the second
// batch's files alone.
func FuzzDiff(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1000, 77777} {
		f.Add(s, s*31+7, s%2 == 0)
	}
	f.Fuzz(func(t *testing.T, seedA, seedB uint64, deleteInactive bool) {
		defer func(p int) { probeLimit, readStoredFirst = p, false }(probeLimit)
		readStoredFirst, probeLimit = seedB%3 == 0, []int{4096, 20, 4096}[seedB%3] // see TestGroupSetHashPath
		pol := policy{inactiveDelete: deleteInactive}
		a := randomFiles(rand.New(rand.NewPCG(seedA, 1)))
		b := randomFiles(rand.New(rand.NewPCG(seedB, 2)))
		db := testDB(t, "acme")
		applyDirect(t, db, "acme", pol, a)
		before := readModel(t, db, "acme")
		batch, _ := applyDirect(t, db, "acme", pol, b)
		after := readModel(t, db, "acme")
		got := replay(t, before, batchEvents(t, db, "acme", batch.ID))
		if diff := cmp.Diff(after, got); diff != "" {
			t.Fatalf("replayed events differ from the stored snapshot (-stored +replayed):\n%s\nA=%v\nB=%v", diff, a, b)
		}
		if batch.Status != state.BatchApplied && batch.Status != state.BatchUnchanged {
			return
		}
		fresh := testDB(t, "acme")
		applyDirect(t, fresh, "acme", pol, b)
		alone := readModel(t, fresh, "acme")
		if diff := cmp.Diff(alone.Users, after.Users); diff != "" {
			t.Fatalf("users after A then B differ from B alone (-alone +after):\n%s", diff)
		}
		names := func(m model) []string {
			var out []string
			for k := range m.Members {
				uid, gid, _ := strings.Cut(k, "|")
				var g struct{ Name string }
				json.Unmarshal([]byte(m.Groups[gid]), &g)
				out = append(out, uid+"|"+g.Name)
			}
			slices.Sort(out)
			return out
		}
		if diff := cmp.Diff(names(alone), names(after)); diff != "" && b[schema.UserGroups] != "" {
			t.Fatalf("memberships after A then B differ from B alone (-alone +after):\n%s", diff)
		}
		// Identical content again changes nothing.
		again, _ := applyDirect(t, db, "acme", pol, b)
		if again.Status != state.BatchUnchanged {
			t.Fatalf("re-applying B gave %s with %+v; want unchanged", again.Status, again.Changes)
		}
	})
}

func TestPreviousAttributes(t *testing.T) {
	for _, tc := range []struct{ old, cur, want string }{
		{`{"id":"1","email":"a","state":"active","custom_attributes":{}}`, `{"id":"1","email":"a","state":"active","custom_attributes":{}}`, ``},
		{`{"email":"a","state":"active","custom_attributes":{}}`, `{"email":"b","state":"inactive","custom_attributes":{}}`, `{"email":"a","state":"active"}`},
		{`{"email":"a","custom_attributes":{}}`, `{"email":"a","job_title":"X","custom_attributes":{}}`, `{"job_title":null}`},
		{`{"email":"a","job_title":"X","custom_attributes":{}}`, `{"email":"a","custom_attributes":{}}`, `{"job_title":"X"}`},
		{`{"email":"a","custom_attributes":{"k":"1","gone":"2"}}`, `{"email":"a","custom_attributes":{"k":"3","new":"4"}}`, `{"custom_attributes":{"gone":"2","k":"1","new":null}}`},
	} {
		got, err := previousAttributes([]byte(tc.old), []byte(tc.cur))
		if err != nil || string(got) != tc.want {
			t.Errorf("previousAttributes(%s, %s) = %s, %v; want %s", tc.old, tc.cur, got, err, tc.want)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\back`, "tab\tnl\ncr\r", "ctl\x01\x1f", "<a&b>", "ünï©ødé 日本", "line\u2028sep\u2029"} {
		want, _ := json.Marshal(s)
		if got := state.AppendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("state.AppendJSONString(%q) = %s; want %s", s, got, want)
		}
	}
}

// TestCompareErrorStopsChecker: when comparing a row with the stored user
// fails (here a stored record that is not valid JSON), diff returns the
// error, and the checker, which runs ahead on its own goroutine, stops
// within a few batches instead of reading the rest of the file.
func TestCompareErrorStopsChecker(t *testing.T) {
	const org, n = "acme", 100000
	db := testDB(t, org)
	var day1, day2 strings.Builder
	day1.WriteString("user_id,email,first_name,last_name,job_title\n")
	day2.WriteString("user_id,email,first_name,last_name,job_title\n")
	for i := range n {
		fmt.Fprintf(&day1, "u%05d,u%05d@example.com,Ann,Lee,Clerk\n", i, i)
		fmt.Fprintf(&day2, "u%05d,u%05d@example.com,Ann,Lee,Manager\n", i, i)
	}
	applyDirect(t, db, org, policy{}, map[schema.Kind]string{schema.Users: day1.String()})
	b := state.Batch{ID: ulid.Make().String(), Org: org, Status: state.BatchProcessing}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatal(err)
	}
	b.Status = state.BatchApplied
	if err := db.ApplyBatch(b, nil, func(a *state.ApplyTx) error {
		return a.PutUser([]byte("u00010"), true, []byte("{broken"))
	}); err != nil {
		t.Fatal(err)
	}
	src := &countingReader{r: strings.NewReader(day2.String())}
	in := []input{{kind: schema.Users, name: "users.csv", open: func() (io.ReadCloser, error) {
		return io.NopCloser(src), nil
	}}}
	err := db.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		r, err := diff(s, policy{}, schema.Limits{}, in, t.TempDir())
		if err == nil {
			r.close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "user u00010") {
		t.Fatalf("diff: %v; want the error of user u00010", err)
	}
	if total := day2.Len(); src.n > total/2 {
		t.Errorf("the checker read %d of %d bytes after the comparison failed on the 11th row", src.n, total)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
