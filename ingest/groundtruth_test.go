package ingest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// rosterDay is one day's export, as rows, with what the test knows about it.
type rosterDay struct {
	users  map[string][]string // id -> user_id,email,first_name,last_name,job_title,location
	groups map[string][]string // id -> group names
}

var firstNames = []string{"Ana", "Bjørn", "Chloé", "Dmitrí", "Émile", "Fátima", "Günter", "Hiroshi", "Íñigo", "Jürgen", "Zoë", "Łukasz", "Søren", "Ólafur", "Nguyễn", "李"}

func (d rosterDay) files(rng *rand.Rand) (users, members string) {
	ids := make([]string, 0, len(d.users))
	for id := range d.users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	var u, m strings.Builder
	u.WriteString("user_id,email,first_name,last_name,job_title,location\n")
	m.WriteString("group_name,user_id\n")
	for _, id := range ids {
		r := d.users[id]
		fmt.Fprintf(&u, "%s,%s,%s,%s,\"%s\",%s\n", r[0], r[1], r[2], r[3], r[4], r[5])
		for _, g := range d.groups[id] {
			fmt.Fprintf(&m, "%s,%s\n", g, id)
		}
	}
	return u.String(), m.String()
}

// TestGroundTruth10k generates day N and day N+1 exports of 10,000 users
// with known hires, terminations, attribute changes and moves between
// groups, and checks that the events of day N+1 are exactly those.
func TestGroundTruth10k(t *testing.T) {
	const n = 10000
	rng := rand.New(rand.NewPCG(2026, 11))
	day := rosterDay{users: map[string][]string{}, groups: map[string][]string{}}
	for i := range n {
		id := fmt.Sprintf("E%05d", i)
		fn := firstNames[rng.IntN(len(firstNames))]
		day.users[id] = []string{id, fmt.Sprintf("e%05d@acme.test", i), fn, fmt.Sprintf("Ñame-%d", i), fmt.Sprintf("Title, level %d", i%7), fmt.Sprintf("Site %d", i%5)}
		day.groups[id] = []string{fmt.Sprintf("Dept %d", i%20), fmt.Sprintf("Site %d", i%5), "Everyone"}
	}
	e := newEnv(t, "acme", state.Settings{}, Defaults{Settle: 200 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	users, members := day.files(rng)
	e.upload("users.csv", []byte(users))
	e.upload("user_groups.csv", []byte(members))
	first := e.waitBatch("", 2*time.Minute)
	if first.Status != state.BatchApplied || first.Changes.UsersCreated != n || first.Changes.MembershipsAdded != 3*n {
		t.Fatalf("day N = %s %+v", first.Status, first.Changes)
	}

	// Day N+1: disjoint sets of known changes.
	perm := rng.Perm(n)
	take := func(k int) []string {
		out := make([]string, k)
		for i := range k {
			out[i] = fmt.Sprintf("E%05d", perm[i])
		}
		perm = perm[k:]
		return out
	}
	want := map[string][]string{}  // event -> keys
	prev := map[string]string{}    // user id -> previous_attributes
	for _, id := range take(150) { // terminations
		want[state.EventUserDeleted] = append(want[state.EventUserDeleted], id)
		for _, g := range day.groups[id] {
			want[state.EventGroupUserRemoved] = append(want[state.EventGroupUserRemoved], id+"|"+g)
		}
		delete(day.users, id)
		delete(day.groups, id)
	}
	for _, id := range take(300) { // new title
		old := day.users[id][4]
		day.users[id][4] = "Directrice générale, " + old
		want[state.EventUserUpdated] = append(want[state.EventUserUpdated], id)
		prev[id] = fmt.Sprintf(`{"job_title":%q}`, old)
	}
	for _, id := range take(100) { // new custom attribute value
		old := day.users[id][5]
		day.users[id][5] = "Zürich"
		want[state.EventUserUpdated] = append(want[state.EventUserUpdated], id)
		prev[id] = fmt.Sprintf(`{"custom_attributes":{"location":%q}}`, old)
	}
	for _, id := range take(250) { // moves to another department
		old := day.groups[id][0]
		to := "Dept moved"
		day.groups[id] = []string{to, day.groups[id][1], day.groups[id][2]}
		want[state.EventGroupUserRemoved] = append(want[state.EventGroupUserRemoved], id+"|"+old)
		want[state.EventGroupUserAdded] = append(want[state.EventGroupUserAdded], id+"|"+to)
	}
	want[state.EventGroupCreated] = []string{"Dept moved"}
	for i := range 200 { // hires
		id := fmt.Sprintf("H%04d", i)
		day.users[id] = []string{id, fmt.Sprintf("h%04d@acme.test", i), "Renée", "Nouvelle-Arrivée", "Stagiaire", "Site 1"}
		day.groups[id] = []string{"Dept 3", "Everyone"}
		want[state.EventUserCreated] = append(want[state.EventUserCreated], id)
		for _, g := range day.groups[id] {
			want[state.EventGroupUserAdded] = append(want[state.EventGroupUserAdded], id+"|"+g)
		}
	}
	users, members = day.files(rng)
	e.upload("users.csv", []byte(users))
	e.upload("user_groups.csv", []byte(members))
	second := e.waitBatch(first.ID, 2*time.Minute)
	if second.Status != state.BatchApplied {
		t.Fatalf("day N+1 = %s", second.Status)
	}

	got := map[string][]string{}
	gotPrev := map[string]string{}
	order := []string{}
	for _, ev := range e.batchEvents(second.ID) {
		if len(order) == 0 || order[len(order)-1] != ev.Event {
			order = append(order, ev.Event)
		}
		var d struct {
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Prev  json.RawMessage `json:"previous_attributes"`
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
				gotPrev[d.ID] = compactJSON(d.Prev)
			}
		}
	}
	for _, m := range []map[string][]string{want, got} {
		for _, v := range m {
			slices.Sort(v)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events differ from the known changes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(prev, gotPrev); diff != "" {
		t.Errorf("previous_attributes differ (-want +got):\n%s", diff)
	}
	wantOrder := []string{state.EventGroupCreated, state.EventUserCreated, state.EventUserUpdated, state.EventGroupUserAdded, state.EventGroupUserRemoved, state.EventUserDeleted}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("event order differs from SPEC §6 (-want +got):\n%s", diff)
	}
}
