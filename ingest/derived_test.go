package ingest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// derivingPolicy is a policy whose mapping derives groups from
// department_name ("Department: {value}"), work_address_locality and a
// ;-separated custom column groups.
func derivingPolicy(t testing.TB) policy {
	t.Helper()
	tm := "Department: {value}"
	m, err := schema.NewMapping(nil, nil, "",
		schema.GroupColumn{Column: "department_name", Template: &tm},
		schema.GroupColumn{Column: "work_address_locality"},
		schema.GroupColumn{Column: "groups", Separator: ";"})
	if err != nil {
		t.Fatal(err)
	}
	return policy{mapping: m}
}

// memberEvents returns the batch's events as "event user|group name" for
// memberships and "event id" for the others, in emission order.
func memberEvents(t testing.TB, db *state.DB, batch string) []string {
	t.Helper()
	var out []string
	for _, e := range batchEvents(t, db, "acme", batch) {
		var d struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
			Group struct {
				Name string `json:"name"`
			} `json:"group"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.User.ID != "":
			out = append(out, e.Event+" "+d.User.ID+"|"+d.Group.Name)
		case d.Name != "":
			out = append(out, e.Event+" "+d.Name)
		default:
			out = append(out, e.Event+" "+d.ID)
		}
	}
	return out
}

// TestDerivedMemberships runs an organization that derives its groups
// from users.csv through a few days: users.csv alone sets the
// memberships, a change of department is one removal and one addition,
// user_groups.csv joins the derived memberships, groups.csv describes a
// derived group, and user_groups.csv alone is refused. Each day runs
// through the group-set hash path and the full scan.
func TestDerivedMemberships(t *testing.T) {
	const hdr = "user_id,email,first_name,last_name,department_name,work_address_locality,groups\n"
	days := []struct {
		name   string
		files  map[schema.Kind]string
		status string
		want   []string
	}{
		{
			name: "users.csv alone sets the memberships",
			files: map[schema.Kind]string{schema.Users: hdr +
				"E1,e1@x.com,Ann,Lee,Sales,Lyon,VPN; Admins\n" +
				"E2,e2@x.com,Bob,Ray,Sales, ,\n" +
				"E3,e3@x.com,Cy,Ng,R&D,Lyon,VPN;VPN\n"},
			status: state.BatchApplied,
			want: []string{
				"dsync.group.created Admins", "dsync.group.created Department: R&D", "dsync.group.created Department: Sales",
				"dsync.group.created Lyon", "dsync.group.created VPN",
				"dsync.user.created E1", "dsync.user.created E2", "dsync.user.created E3",
				"dsync.group.user_added E1|Department: Sales", "dsync.group.user_added E1|Lyon", "dsync.group.user_added E1|VPN", "dsync.group.user_added E1|Admins",
				"dsync.group.user_added E2|Department: Sales",
				"dsync.group.user_added E3|Department: R&D", "dsync.group.user_added E3|Lyon", "dsync.group.user_added E3|VPN",
			},
		},
		{
			name: "a change of department",
			files: map[schema.Kind]string{schema.Users: hdr +
				"E1,e1@x.com,Ann,Lee,R&D,Lyon,VPN; Admins\n" +
				"E2,e2@x.com,Bob,Ray,Sales, ,\n" +
				"E3,e3@x.com,Cy,Ng,R&D,Lyon,VPN;VPN\n"},
			status: state.BatchApplied,
			want: []string{
				"dsync.user.updated E1",
				"dsync.group.user_added E1|Department: R&D",
				"dsync.group.user_removed E1|Department: Sales",
			},
		},
		{
			name: "the same again changes nothing",
			files: map[schema.Kind]string{schema.Users: hdr +
				"E1,e1@x.com,Ann,Lee,R&D,Lyon,VPN; Admins\n" +
				"E2,e2@x.com,Bob,Ray,Sales, ,\n" +
				"E3,e3@x.com,Cy,Ng,R&D,Lyon,VPN;VPN\n"},
			status: state.BatchUnchanged,
		},
		{
			name: "user_groups.csv joins them; groups.csv describes a derived group",
			files: map[schema.Kind]string{
				schema.Users: hdr +
					"E1,e1@x.com,Ann,Lee,R&D,Lyon,VPN; Admins\n" +
					"E2,e2@x.com,Bob,Ray,Sales,Oslo,\n" +
					"E3,e3@x.com,Cy,Ng,R&D,Lyon,VPN;VPN\n",
				schema.UserGroups: "group_name,user_id\nOn call,E2\nVPN,E1\nLyon,E3\n",
				schema.Groups:     "group_name,description\nDepartment: R&D,Research\n",
			},
			status: state.BatchApplied,
			want: []string{
				"dsync.group.created Oslo", "dsync.group.created On call", "dsync.group.updated Department: R&D",
				"dsync.user.updated E2",
				"dsync.group.user_added E2|Oslo", "dsync.group.user_added E2|On call",
			},
		},
		{
			name:   "user_groups.csv alone is refused",
			files:  map[schema.Kind]string{schema.UserGroups: "group_name,user_id\nOn call,E1\n"},
			status: state.BatchRejected,
		},
		{
			name: "users.csv alone ends what only user_groups.csv gave",
			files: map[schema.Kind]string{schema.Users: hdr +
				"E1,e1@x.com,Ann,Lee,R&D,Lyon,VPN; Admins\n" +
				"E2,e2@x.com,Bob,Ray,Sales,Oslo,\n" +
				"E3,e3@x.com,Cy,Ng,R&D,,VPN\n"},
			status: state.BatchApplied,
			want: []string{
				"dsync.user.updated E3",
				"dsync.group.user_removed E2|On call",
				"dsync.group.user_removed E3|Lyon",
				"dsync.group.deleted On call",
			},
		},
	}
	defer func() { noGroupSetHashes = false }()
	for _, scan := range []bool{false, true} {
		noGroupSetHashes = scan
		db := testDB(t, "acme")
		pol := derivingPolicy(t)
		for _, day := range days {
			b, _ := applyDirect(t, db, "acme", pol, day.files)
			if b.Status != day.status {
				t.Fatalf("scan=%v, %s: status %s; want %s", scan, day.name, b.Status, day.status)
			}
			got := memberEvents(t, db, b.ID)
			slices.Sort(got)
			want := slices.Clone(day.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("scan=%v, %s: events (-want +got):\n%s", scan, day.name, diff)
			}
		}
	}
}

// TestDerivedRejectedNeedsUsers checks the message of a user_groups.csv
// sent without users.csv to an organization that derives groups.
func TestDerivedRejectedNeedsUsers(t *testing.T) {
	db := testDB(t, "acme")
	pol := derivingPolicy(t)
	applyDirect(t, db, "acme", pol, map[schema.Kind]string{schema.Users: "user_id,email,first_name,last_name\nE1,e1@x.com,A,B\n"})
	b, r := applyDirect(t, db, "acme", pol, map[schema.Kind]string{schema.UserGroups: "group_name,user_id\nX,E1\n"})
	if b.Status != state.BatchRejected {
		t.Fatalf("status %s; want rejected", b.Status)
	}
	iss := r.checker.Issues()
	if len(iss) != 1 || iss[0].Code != schema.CodeUsersFileRequired || iss[0].File != "user_groups.csv" {
		t.Fatalf("issues %+v; want one users_file_required on user_groups.csv", iss)
	}
}

// TestDerivedSameAsHandMade applies random days of an HR export to an
// organization that derives its groups (users.csv, sometimes with a
// user_groups.csv and a groups.csv) and the hand-made equivalent to one
// that does not (the same users.csv, and a user_groups.csv with the
// derived memberships and the extra ones), and wants the same events, in
// the same order, and the same snapshot, through both membership paths
// and staged applies.
func TestDerivedSameAsHandMade(t *testing.T) {
	defer func() { noGroupSetHashes, directStageTx = false, 0 }()
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 15))
		noGroupSetHashes = seed%2 == 1
		directStageTx = 0
		if seed%4 >= 2 {
			directStageTx = 1 + int(seed%7)
		}
		derive := derivingPolicy(t)
		plain := policy{}
		if seed%3 == 0 {
			derive.inactiveDelete, plain.inactiveDelete = true, true
		}
		dbD, dbP := testDB(t, "acme"), testDB(t, "acme")
		for day := range 5 {
			derived, handMade := hrDay(rng)
			where := fmt.Sprintf("seed %d day %d, files %v", seed, day, derived)
			bd, _ := applyDirect(t, dbD, "acme", derive, derived)
			bp, _ := applyDirect(t, dbP, "acme", plain, handMade)
			if bd.Status != bp.Status || bd.Changes != bp.Changes {
				t.Fatalf("%s: derived %s %+v, hand-made %s %+v", where, bd.Status, bd.Changes, bp.Status, bp.Changes)
			}
			evs := func(db *state.DB, batch string) []string {
				var out []string
				for _, e := range batchEvents(t, db, "acme", batch) {
					out = append(out, e.Event+" "+string(e.Data))
				}
				return out
			}
			if diff := cmp.Diff(evs(dbP, bp.ID), evs(dbD, bd.ID)); diff != "" {
				t.Fatalf("%s: events differ (-hand-made +derived):\n%s", where, diff)
			}
			if diff := cmp.Diff(readModel(t, dbP, "acme"), readModel(t, dbD, "acme")); diff != "" {
				t.Fatalf("%s: snapshots differ (-hand-made +derived):\n%s", where, diff)
			}
		}
	}
}

// hrDay makes one day's export of a few users with departments,
// locations and a multi-valued groups column (values with spaces, empty
// ones, repeats), for an organization with derivingPolicy, and the
// hand-made equivalent: the same users.csv, with a user_groups.csv of the
// memberships derivingPolicy derives joined with the extra ones.
func hrDay(rng *rand.Rand) (derived, handMade map[schema.Kind]string) {
	depts := []string{"Sales", "R&D", " Ops ", "", "Lyon"}
	sites := []string{"Lyon", "Oslo", "", "Köln"}
	extra := []string{"VPN", "Admins", "Lyon", "Department: Sales", " "}
	states := []string{"", "active", "inactive"}
	var users, members strings.Builder
	users.WriteString("user_id,email,first_name,last_name,status,department_name,work_address_locality,groups\n")
	members.WriteString("group_name,user_id\n")
	var extraRows []string
	seen := map[string]bool{}
	add := func(group, id string) {
		group = strings.TrimSpace(group)
		if group == "" || seen[id+"|"+group] {
			return
		}
		seen[id+"|"+group] = true
		fmt.Fprintf(&members, "%q,%s\n", group, id)
	}
	for i := range 4 + rng.IntN(8) {
		id := fmt.Sprintf("E%d", rng.IntN(14))
		if seen["user "+id] {
			continue
		}
		seen["user "+id] = true
		dept, site := depts[rng.IntN(len(depts))], sites[rng.IntN(len(sites))]
		var multi []string
		for range rng.IntN(4) {
			multi = append(multi, extra[rng.IntN(len(extra))])
		}
		fmt.Fprintf(&users, "%s,%s@x.com,F%d,L,%s,%q,%q,%q\n", id, strings.ToLower(id), i, states[rng.IntN(len(states))], dept, site, strings.Join(multi, ";"))
		if d := strings.TrimSpace(dept); d != "" {
			add("Department: "+d, id)
		}
		add(site, id)
		for _, g := range multi {
			add(g, id)
		}
		if rng.IntN(3) == 0 {
			extraRows = append(extraRows, fmt.Sprintf("%s,%s", extra[rng.IntN(len(extra)-1)], id))
		}
		if rng.IntN(4) == 0 {
			extraRows = append(extraRows, fmt.Sprintf("On call,%s", id))
		}
	}
	derived = map[schema.Kind]string{schema.Users: users.String()}
	handMade = map[schema.Kind]string{schema.Users: users.String()}
	if len(extraRows) > 0 && rng.IntN(2) == 0 {
		derived[schema.UserGroups] = "group_name,user_id\n" + strings.Join(extraRows, "\n") + "\n"
		for _, r := range extraRows {
			g, id, _ := strings.Cut(r, ",")
			add(g, id)
		}
	}
	handMade[schema.UserGroups] = members.String()
	if rng.IntN(3) == 0 {
		gs := "group_name,description\nDepartment: Sales,The sales team\nOn call,Nights\n"
		derived[schema.Groups], handMade[schema.Groups] = gs, gs
	}
	return derived, handMade
}
