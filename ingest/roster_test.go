package ingest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/ingest/ingesttest"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// rosterView is what a test knows of an ingesttest.Roster: each user's
// directory attributes (as events name them) and groups, and the groups of
// groups.csv.
type rosterView struct {
	users  map[string]map[string]string // id -> attribute -> value
	groups map[string]map[string]bool   // id -> group names
	defs   map[string]ingesttest.GroupDef
}

func viewOf(r *ingesttest.Roster) rosterView {
	v := rosterView{users: map[string]map[string]string{}, groups: map[string]map[string]bool{}, defs: map[string]ingesttest.GroupDef{}}
	custom := len(ingesttest.Columns) - ingesttest.Custom
	r.Each(func(row ingesttest.Row) {
		attrs := map[string]string{}
		for i, col := range ingesttest.Columns {
			val := row.Values[i]
			switch {
			case col == "user_id" || val == "":
				continue
			case col == "status":
				col = "state"
				if val != "active" {
					val = "inactive"
				}
			case i >= custom:
				col = "custom_attributes." + col
			}
			attrs[col] = val
		}
		id := row.Values[0]
		v.users[id] = attrs
		v.groups[id] = map[string]bool{}
		for _, g := range row.Groups {
			v.groups[id][g] = true
		}
	})
	for _, g := range r.Groups() {
		v.defs[g.Name] = g
	}
	return v
}

// wantEvents returns the events that turn the snapshot of day a into that
// of day b, as keys (user id, user id|group name, group name) by event
// type, and each updated user's previous_attributes.
func wantEvents(a, b rosterView) (map[string][]string, map[string]map[string]any) {
	want := map[string][]string{}
	prev := map[string]map[string]any{}
	for id, attrs := range b.users {
		old, ok := a.users[id]
		if !ok {
			want[state.EventUserCreated] = append(want[state.EventUserCreated], id)
			continue
		}
		p := map[string]any{}
		custom := map[string]any{}
		for k := range joinKeys(old, attrs) {
			if old[k] == attrs[k] {
				continue
			}
			var was any
			if v, ok := old[k]; ok {
				was = v
			}
			if name, ok := strings.CutPrefix(k, "custom_attributes."); ok {
				custom[name] = was
			} else {
				p[k] = was
			}
		}
		if len(custom) > 0 {
			p["custom_attributes"] = custom
		}
		if len(p) > 0 {
			want[state.EventUserUpdated] = append(want[state.EventUserUpdated], id)
			prev[id] = p
		}
	}
	for id := range a.users {
		if _, ok := b.users[id]; !ok {
			want[state.EventUserDeleted] = append(want[state.EventUserDeleted], id)
		}
	}
	for id := range joinKeys(a.groups, b.groups) {
		for g := range joinKeys(a.groups[id], b.groups[id]) {
			switch {
			case a.groups[id][g] && !b.groups[id][g]:
				want[state.EventGroupUserRemoved] = append(want[state.EventGroupUserRemoved], id+"|"+g)
			case !a.groups[id][g] && b.groups[id][g]:
				want[state.EventGroupUserAdded] = append(want[state.EventGroupUserAdded], id+"|"+g)
			}
		}
	}
	for name := range joinKeys(a.defs, b.defs) {
		_, had := a.defs[name]
		_, has := b.defs[name]
		switch {
		case had && !has:
			want[state.EventGroupDeleted] = append(want[state.EventGroupDeleted], name)
		case !had && has:
			want[state.EventGroupCreated] = append(want[state.EventGroupCreated], name)
		case a.defs[name] != b.defs[name]:
			want[state.EventGroupUpdated] = append(want[state.EventGroupUpdated], name)
		}
	}
	for _, v := range want {
		slices.Sort(v)
	}
	return want, prev
}

func joinKeys[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// gotEvents reads a batch's events as wantEvents gives them, and checks
// that their categories follow SPEC §6.
func gotEvents(t testing.TB, evs []state.Event) (map[string][]string, map[string]map[string]any) {
	t.Helper()
	got := map[string][]string{}
	prev := map[string]map[string]any{}
	rank := map[string]int{state.EventGroupCreated: 0, state.EventGroupUpdated: 0, state.EventUserCreated: 1, state.EventUserUpdated: 2,
		state.EventGroupUserAdded: 3, state.EventGroupUserRemoved: 4, state.EventUserDeleted: 5, state.EventGroupDeleted: 6}
	last := -1
	for _, ev := range evs {
		if r := rank[ev.Event]; r < last {
			t.Fatalf("%s after a later category of SPEC §6", ev.Event)
		} else {
			last = r
		}
		var d struct {
			ID    string         `json:"id"`
			Name  string         `json:"name"`
			Prev  map[string]any `json:"previous_attributes"`
			User  struct{ ID string }
			Group struct{ Name string }
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		switch ev.Event {
		case state.EventGroupUserAdded, state.EventGroupUserRemoved:
			got[ev.Event] = append(got[ev.Event], d.User.ID+"|"+d.Group.Name)
		case state.EventGroupCreated, state.EventGroupUpdated, state.EventGroupDeleted:
			got[ev.Event] = append(got[ev.Event], d.Name)
		default:
			got[ev.Event] = append(got[ev.Event], d.ID)
			if ev.Event == state.EventUserUpdated {
				prev[d.ID] = d.Prev
			}
		}
	}
	for _, v := range got {
		slices.Sort(v)
	}
	return got, prev
}

func rosterFiles(r *ingesttest.Roster, kinds ...schema.Kind) map[schema.Kind]string {
	u, m, g := r.Files()
	all := map[schema.Kind]string{schema.Users: u, schema.UserGroups: m, schema.Groups: g}
	if len(kinds) == 0 {
		return all
	}
	out := map[schema.Kind]string{}
	for _, k := range kinds {
		out[k] = all[k]
	}
	return out
}

// checkRosterDay applies day a, then day b (split: users.csv alone first,
// then the groups files in a later batch, on day a), and checks that the
// events of b are exactly what a naive comparison of the two exports
// gives, in SPEC §6 order; that replaying them on the snapshot of a gives
// the snapshot of b; and that b alone gives the same snapshot.
func checkRosterDay(t *testing.T, a, b *ingesttest.Roster, pol policy, split bool) {
	t.Helper()
	db := testDB(t, "acme")
	if split {
		first, _ := applyDirect(t, db, "acme", pol, rosterFiles(a, schema.Users))
		if first.Status != state.BatchApplied || first.Changes.UsersCreated != a.Len() || first.Changes.MembershipsAdded != 0 {
			t.Fatalf("users.csv alone: %s %+v", first.Status, first.Changes)
		}
		groups, _ := applyDirect(t, db, "acme", pol, rosterFiles(a, schema.UserGroups, schema.Groups))
		va := viewOf(a)
		n := 0
		for _, gs := range va.groups {
			n += len(gs)
		}
		if groups.Status != state.BatchApplied || groups.Changes.MembershipsAdded != n || groups.Changes.GroupsCreated != len(va.defs) {
			t.Fatalf("groups files after users.csv: %s %+v; want %d memberships, %d groups", groups.Status, groups.Changes, n, len(va.defs))
		}
	} else {
		first, _ := applyDirect(t, db, "acme", pol, rosterFiles(a))
		if first.Status != state.BatchApplied || first.Changes.UsersCreated != a.Len() {
			t.Fatalf("day 1: %s %+v", first.Status, first.Changes)
		}
	}
	before := readModel(t, db, "acme")
	batch, _ := applyDirect(t, db, "acme", pol, rosterFiles(b))
	want, wantPrev := wantEvents(viewOf(a), viewOf(b))
	if batch.Status != state.BatchApplied && (batch.Status != state.BatchUnchanged || len(want) > 0) {
		t.Fatalf("day 2: %s %+v; want %d kinds of events", batch.Status, batch.Changes, len(want))
	}
	evs := batchEvents(t, db, "acme", batch.ID)
	got, gotPrev := gotEvents(t, evs)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events differ from the exports' differences (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPrev, gotPrev); diff != "" {
		t.Errorf("previous_attributes differ (-want +got):\n%s", diff)
	}
	after := readModel(t, db, "acme")
	if diff := cmp.Diff(after, replay(t, before, evs)); diff != "" {
		t.Errorf("replayed events differ from the stored snapshot (-stored +replayed):\n%s", diff)
	}
	alone := testDB(t, "acme")
	applyDirect(t, alone, "acme", pol, rosterFiles(b))
	if diff := cmp.Diff(readModel(t, alone, "acme"), after); diff != "" {
		t.Errorf("day 2 after day 1 differs from day 2 alone (-alone +after):\n%s", diff)
	}
	again, _ := applyDirect(t, db, "acme", pol, rosterFiles(b))
	if again.Status != state.BatchUnchanged {
		t.Errorf("day 2 again: %s %+v; want unchanged", again.Status, again.Changes)
	}
}

// TestGroundTruthRealShape runs the differ on exports of the real shape
// (package ingesttest: random ids, rows by last name or in no order,
// heavy-tailed groups, groups.csv): a working day, a reorganization and a
// day of deactivations, with the apply direct and staged (a new
// generation, then overlays), and the split upload.
func TestGroundTruthRealShape(t *testing.T) {
	defer func() { directStageTx = 0 }()
	for _, tc := range []struct {
		name    string
		shape   ingesttest.Shape
		kind    ingesttest.ChangeKind
		share   float64
		stageTx int
		split   bool
	}{
		{"workday", ingesttest.Shape{Users: 3000, Seed: 1}, ingesttest.Workday, 0.05, 0, false},
		{"workday staged", ingesttest.Shape{Users: 3000, Seed: 2, IDs: ingesttest.Numeric}, ingesttest.Workday, 0.05, 97, false},
		{"reorg unsorted by group", ingesttest.Shape{Users: 3000, Seed: 3, IDs: ingesttest.UUID, Rows: ingesttest.Unsorted, Members: ingesttest.ByGroup}, ingesttest.Reorg, 0.3, 0, false},
		{"reorg staged", ingesttest.Shape{Users: 3000, Seed: 4, Members: ingesttest.Shuffled}, ingesttest.Reorg, 0.3, 211, false},
		{"deactivate", ingesttest.Shape{Users: 3000, Seed: 5, IDs: ingesttest.Okta, Rows: ingesttest.ByDepartment}, ingesttest.Deactivate, 0.1, 0, false},
		{"split staged", ingesttest.Shape{Users: 3000, Seed: 6}, ingesttest.Workday, 0.05, 131, true},
		{"split", ingesttest.Shape{Users: 2000, Seed: 7, Rows: ingesttest.Unsorted, Members: ingesttest.ByGroup}, ingesttest.Reorg, 0.3, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			directStageTx = tc.stageTx
			a := ingesttest.New(tc.shape)
			b := a.Next(tc.kind, tc.share, 11)
			checkRosterDay(t, a, b, policy{}, tc.split)
		})
	}
}

// FuzzDiffRoster is FuzzDiff on small exports of the real shape: any
// shape, kind and size of day, direct or staged, together or split.
func FuzzDiffRoster(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1000} {
		f.Add(s, uint8(s*7), uint8(s%3), uint8(s*13), s%2 == 0)
	}
	f.Fuzz(func(t *testing.T, seed uint64, size, kind, share uint8, split bool) {
		defer func() { directStageTx = 0 }()
		shape := ingesttest.Shape{
			Users:   1 + int(size)%60,
			Seed:    seed,
			IDs:     ingesttest.IDStyle(seed % 4),
			Rows:    ingesttest.RowOrder(seed / 4 % 3),
			Members: ingesttest.MemberOrder(seed / 12 % 3),
		}
		directStageTx = []int{0, 1, 3, 17}[seed/36%4]
		a := ingesttest.New(shape)
		b := a.Next(ingesttest.ChangeKind(kind%3), float64(share%101)/100, seed)
		// The deletion guard is not under test here.
		checkRosterDay(t, a, b, policy{}, split)
	})
}
