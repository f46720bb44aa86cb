package storetest

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// SnapUser is a user of a Snapshot.
type SnapUser struct {
	Rec    state.UserRecord
	Active bool
}

// SnapGroup is a group of a Snapshot: Doc is its directory group JSON.
type SnapGroup struct {
	ID, Name, Doc string
}

// Snapshot is an organization's directory as a batch leaves it, for
// Harness.Snapshot to write.
type Snapshot struct {
	Users   []SnapUser
	Groups  []SnapGroup
	Members [][2]string // (user id, group id)
}

// snapshotFixture is acme's directory: users with known and custom
// attributes (text that JSON escapes), one inactive, groups, and
// memberships, in an order that is not the ids'.
func snapshotFixture() Snapshot {
	return Snapshot{
		Users: []SnapUser{
			{Rec: state.UserRecord{ID: "u3", Email: "c@example.com", FirstName: "Çé", LastName: "<&> \"q\" \u2028"}, Active: true},
			{Rec: state.UserRecord{ID: "u1", Email: "a@example.com", FirstName: "Ann", LastName: "Lee",
				Known: []state.Attr{{Name: "username", Value: "ann"}, {Name: "job_title", Value: "Engineer"},
					{Name: "manager_email", Value: "m@example.com"}, {Name: "work_address_country", Value: "FR"}},
				Custom: []state.Attr{{Name: "Cost", Value: "1"}, {Name: "badge", Value: "7\t8"}, {Name: "zone", Value: "é"}}}, Active: true},
			{Rec: state.UserRecord{ID: "u2", Email: "b@example.com", FirstName: "Bo", LastName: "Ng"}, Active: false},
			{Rec: state.UserRecord{ID: "u-0", Email: "d@example.com", FirstName: "D", LastName: "E"}, Active: true},
		},
		Groups: []SnapGroup{
			{ID: "g2", Name: "Sales", Doc: `{"object":"directory_group","id":"g2","name":"Sales"}`},
			{ID: "g1", Name: "Eng", Doc: `{"object":"directory_group","id":"g1","organization_id":"acme","name":"Eng","attributes":{"b": 1,  "a":"x"}}`},
			{ID: "g3", Name: "Empty", Doc: `{"id":"g3"}`},
		},
		Members: [][2]string{{"u1", "g2"}, {"u1", "g1"}, {"u2", "g1"}, {"u3", "g1"}, {"u-0", "g2"}},
	}
}

// userJSON is state's rendering of a snapshot user.
func userJSON(org string, u SnapUser) string {
	return string(state.AppendUserJSON(nil, org, u.Active, u.Rec.AppendBinary(nil)))
}

func rawStrings(rs []json.RawMessage) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r))
	}
	return out
}

func testSnapshotReads(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta", "empty")
	snap := snapshotFixture()
	h.Snapshot(t, s, "acme", snap)
	h.Snapshot(t, s, "beta", Snapshot{Users: snap.Users[:1], Groups: snap.Groups[:1], Members: [][2]string{{"u3", "g2"}}})
	user := map[string]string{}
	for _, u := range snap.Users {
		user[u.Rec.ID] = userJSON("acme", u)
	}
	group := map[string]string{}
	for _, g := range snap.Groups {
		group[g.ID] = g.Doc
	}
	// One rendering spelled out, so that both stores are held to the
	// bytes of SPEC §6 and not only to each other.
	want := `{"object":"directory_user","id":"u1","organization_id":"acme","email":"a@example.com","first_name":"Ann","last_name":"Lee","state":"active",` +
		`"username":"ann","job_title":"Engineer","manager_email":"m@example.com","work_address_country":"FR","custom_attributes":{"Cost":"1","badge":"7\t8","zone":"é"}}`
	if got, err := s.User("acme", "u1"); err != nil || string(got) != want {
		t.Errorf("User(acme, u1) = %s, %v\nwant %s", got, err, want)
	}
	for _, tc := range []struct {
		filter, after string
		limit         int
		want          []string
	}{
		{"", "", 0, []string{"u-0", "u1", "u2", "u3"}},
		{"", "u1", 2, []string{"u2", "u3"}},
		{"", "u10", 0, []string{"u2", "u3"}},
		{"active", "", 0, []string{"u-0", "u1", "u3"}},
		{"inactive", "", 0, []string{"u2"}},
		{"active", "u1", 1, []string{"u3"}},
		{"", "u3", 0, nil},
	} {
		got, err := s.Users("acme", tc.filter, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var wantJSON []string
		for _, id := range tc.want {
			wantJSON = append(wantJSON, user[id])
		}
		if diff := cmp.Diff(wantJSON, rawStrings(got)); diff != "" {
			t.Errorf("Users(acme, %q, %q, %d) mismatch (-want +got):\n%s", tc.filter, tc.after, tc.limit, diff)
		}
	}
	for id, w := range user {
		if got, err := s.User("acme", id); err != nil || string(got) != w {
			t.Errorf("User(acme, %s) = %s, %v; want %s", id, got, err, w)
		}
	}
	if got, err := s.Groups("acme", "", 0); err != nil || !cmp.Equal([]string{group["g1"], group["g2"], group["g3"]}, rawStrings(got)) {
		t.Errorf("Groups(acme) = %q, %v; want g1, g2, g3 verbatim", rawStrings(got), err)
	}
	if got, err := s.Groups("acme", "g1", 1); err != nil || !cmp.Equal([]string{group["g2"]}, rawStrings(got)) {
		t.Errorf("Groups(acme, g1, 1) = %q, %v; want g2", rawStrings(got), err)
	}
	if got, err := s.Group("acme", "g1"); err != nil || string(got) != group["g1"] {
		t.Errorf("Group(acme, g1) = %s, %v; want %s", got, err, group["g1"])
	}
	if got, err := s.UserGroups("acme", "u1", "", 0); err != nil || !cmp.Equal([]string{group["g1"], group["g2"]}, rawStrings(got)) {
		t.Errorf("UserGroups(acme, u1) = %q, %v; want g1, g2", rawStrings(got), err)
	}
	if got, err := s.UserGroups("acme", "u1", "g1", 0); err != nil || !cmp.Equal([]string{group["g2"]}, rawStrings(got)) {
		t.Errorf("UserGroups(acme, u1, after g1) = %q, %v; want g2", rawStrings(got), err)
	}
	if got, err := s.GroupUsers("acme", "g1", "", 2); err != nil || !cmp.Equal([]string{user["u1"], user["u2"]}, rawStrings(got)) {
		t.Errorf("GroupUsers(acme, g1, 2) = %q, %v; want u1, u2", rawStrings(got), err)
	}
	if got, err := s.GroupUsers("acme", "g1", "u2", 0); err != nil || !cmp.Equal([]string{user["u3"]}, rawStrings(got)) {
		t.Errorf("GroupUsers(acme, g1, after u2) = %q, %v; want u3", rawStrings(got), err)
	}
	if got, err := s.GroupUsers("acme", "g3", "", 0); err != nil || len(got) != 0 {
		t.Errorf("GroupUsers(acme, g3) = %q, %v; want none", rawStrings(got), err)
	}
	if c, err := s.SnapshotCounts("acme"); err != nil || c != (state.SnapshotCounts{Users: 4, Active: 3, Groups: 3, Memberships: 5}) {
		t.Errorf("SnapshotCounts(acme) = %+v, %v; want 4 users, 3 active, 3 groups, 5 memberships", c, err)
	}
	// beta's u3 is beta's.
	if got, err := s.User("beta", "u3"); err != nil || string(got) != userJSON("beta", snap.Users[0]) {
		t.Errorf("User(beta, u3) = %s, %v", got, err)
	}
	if got, err := s.Users("empty", "", "", 0); err != nil || len(got) != 0 {
		t.Errorf("Users(empty) = %q, %v; want none", rawStrings(got), err)
	}
	if c, err := s.SnapshotCounts("empty"); err != nil || c != (state.SnapshotCounts{}) {
		t.Errorf("SnapshotCounts(empty) = %+v, %v; want zeros", c, err)
	}
	notFound := map[string]func() error{
		"User(acme, u9)":       func() error { _, err := s.User("acme", "u9"); return err },
		"Group(acme, g9)":      func() error { _, err := s.Group("acme", "g9"); return err },
		"UserGroups(acme, u9)": func() error { _, err := s.UserGroups("acme", "u9", "", 0); return err },
		"GroupUsers(acme, g9)": func() error { _, err := s.GroupUsers("acme", "g9", "", 0); return err },
		"Users(none)":          func() error { _, err := s.Users("none", "", "", 0); return err },
		"Groups(none)":         func() error { _, err := s.Groups("none", "", 0); return err },
		"User(none, u1)":       func() error { _, err := s.User("none", "u1"); return err },
		"SnapshotCounts(none)": func() error { _, err := s.SnapshotCounts("none"); return err },
	}
	for what, f := range notFound {
		if err := f(); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("%s = %v; want ErrNotFound", what, err)
		}
	}
}
