package schema

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func tmpl(s string) *string { return &s }

// TestGroupColumnsRefused checks that groups_from_columns is refused with
// a message naming the column at fault, and accepted otherwise.
func TestGroupColumnsRefused(t *testing.T) {
	bamboo := map[string]string{"Department": "department_name", "Site": "custom:site", "SSN": "drop", "Team": "custom:team"}
	tests := []struct {
		name    string
		columns map[string]string
		groups  []GroupColumn
		want    []string // substrings of the problems, in order; nil = valid
	}{
		{"known columns", nil, []GroupColumn{{Column: "department_name"}, {Column: "Division_Name", Template: tmpl("Division: {value}")}, {Column: "work_address_locality", Template: tmpl("{value} office")}}, nil},
		{"custom attribute", nil, []GroupColumn{{Column: "groups", Separator: ";"}}, nil},
		{"custom attribute of the mapping", bamboo, []GroupColumn{{Column: "site"}, {Column: "TEAM", Separator: ","}}, nil},
		{"template with the value twice", nil, []GroupColumn{{Column: "cost_center_name", Template: tmpl("{value} ({value})")}}, nil},
		{"no column", nil, []GroupColumn{{Column: " "}}, []string{"groups_from_columns: an entry names no column"}},
		{"listed twice", nil, []GroupColumn{{Column: "department_name"}, {Column: "department_name", Template: tmpl("D: {value}")}},
			[]string{`groups_from_columns: "department_name" is listed twice`}},
		{"listed twice ignoring case", nil, []GroupColumn{{Column: "groups"}, {Column: "Groups"}},
			[]string{`groups_from_columns: "groups" and "Groups" are the same column (names match ignoring case)`}},
		{"a person's column", nil, []GroupColumn{{Column: "email"}}, []string{"groups_from_columns: email identifies the person or their status, not a group"}},
		{"status", nil, []GroupColumn{{Column: "State"}}, []string{"groups_from_columns: state identifies the person or their status"}},
		{"another file's column", nil, []GroupColumn{{Column: "group_name"}}, []string{"groups_from_columns: group_name is a column of user_groups.csv or groups.csv, not of users.csv"}},
		{"a source header the mapping reads as a column", bamboo, []GroupColumn{{Column: "department"}},
			[]string{`groups_from_columns: the column "department" is read as department_name by the columns mapping: name department_name`}},
		{"a dropped column", bamboo, []GroupColumn{{Column: "SSN"}}, []string{`groups_from_columns: the column "SSN" is dropped by the columns mapping`}},
		{"unknown column like a known one", nil, []GroupColumn{{Column: "Department Name"}},
			[]string{`groups_from_columns: "Department Name" is not a column of users.csv (did you mean department_name?)`}},
		{"empty template", nil, []GroupColumn{{Column: "department_name", Template: tmpl(" ")}},
			[]string{"groups_from_columns: the template of department_name is empty"}},
		{"template without the value", nil, []GroupColumn{{Column: "department_name", Template: tmpl("Staff")}},
			[]string{`groups_from_columns: the template "Staff" of department_name has no {value}, so everyone would be in the one group "Staff"`}},
		{"every problem", bamboo, []GroupColumn{{Column: "user_id"}, {Column: "Site"}, {Column: "site"}, {Column: "division_name", Template: tmpl("")}},
			[]string{"user_id identifies", `"Site" and "site" are the same column`, "the template of division_name is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapping(tt.columns, nil, "", tt.groups...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("NewMapping = %v; want no error", err)
				}
				if got := len(m.GroupColumns()); got != len(tt.groups) {
					t.Fatalf("GroupColumns() has %d; want %d", got, len(tt.groups))
				}
				return
			}
			var me *MappingError
			if !errors.As(err, &me) {
				t.Fatalf("NewMapping = %v; want a *MappingError", err)
			}
			if len(me.Problems) != len(tt.want) {
				t.Fatalf("NewMapping problems = %q; want %d", me.Problems, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(me.Problems[i], w) {
					t.Errorf("problem %d = %q; want it to contain %q", i, me.Problems[i], w)
				}
			}
		})
	}
}

// TestDeriveGroups checks the rules of groups derived from users.csv: the
// groups each valid row gives, trimmed, split, named by the template, an
// empty value giving none and a repeat counting once, and how the
// memberships of user_groups.csv join them.
func TestDeriveGroups(t *testing.T) {
	dept := GroupColumn{Column: "department_name", Template: tmpl("Department: {value}")}
	tests := []struct {
		name    string
		columns map[string]string
		groups  []GroupColumn
		users   string
		members string   // user_groups.csv, "" = none
		want    []string // user:group, as the callbacks see them, users first
		counts  []int    // memberships per column
		stats   Stats    // the batch's counts
		issues  []string // code@line:column
		more    func(*testing.T, *Checker)
	}{
		{
			name: "template", groups: []GroupColumn{dept},
			users: uhdr + ",department_name\n" + "E1,a@x.com,A,B,Sales\nE2,b@x.com,A,B,  R&D \nE3,c@x.com,A,B,\n",
			want:  []string{"E1:Department: Sales", "E2:Department: R&D"}, counts: []int{2},
			stats: Stats{Users: 3, Groups: 2, Memberships: 2}, issues: []string{},
		},
		{
			name:   "several columns and a multi-valued one",
			groups: []GroupColumn{dept, {Column: "work_address_locality"}, {Column: "groups", Separator: ";"}},
			users: uhdr + ",department_name,work_address_locality,groups\n" +
				"E1,a@x.com,A,B,Sales,Lyon,Admins; VPN ;;Admins\n" +
				"E2,b@x.com,A,B,Sales,,\n" +
				"E3,c@x.com,A,B,,Lyon,Lyon\n",
			want: []string{"E1:Department: Sales", "E1:Lyon", "E1:Admins", "E1:VPN", "E2:Department: Sales", "E3:Lyon"},
			// E3's Lyon from groups is the one work_address_locality gave.
			counts: []int{2, 2, 2}, stats: Stats{Users: 3, Groups: 4, Memberships: 6}, issues: []string{},
		},
		{
			name: "a source column read through the mapping", columns: map[string]string{"Dept": "department_name", "Employee": "user_id"},
			groups: []GroupColumn{{Column: "department_name"}},
			users:  "Employee,email,first_name,last_name,Dept\nE1,a@x.com,A,B,Ops\n",
			want:   []string{"E1:Ops"}, counts: []int{1}, stats: Stats{Users: 1, Groups: 1, Memberships: 1}, issues: []string{},
		},
		{
			name: "a custom attribute by the mapping's name", columns: map[string]string{"Standort": "custom:site"},
			groups: []GroupColumn{{Column: "site", Template: tmpl("Site {value}")}},
			users:  uhdr + ",Standort\nE1,a@x.com,A,B,Köln\n",
			want:   []string{"E1:Site Köln"}, counts: []int{1}, issues: []string{},
		},
		{
			name: "joined with user_groups.csv, a repeat counting once without a warning", groups: []GroupColumn{{Column: "department_name"}},
			users:   uhdr + ",department_name\nE1,a@x.com,A,B,Sales\nE2,b@x.com,A,B,Ops\n",
			members: "group_name,user_id\nSales,E1\nAdmins,E1\nOps,E2\nAdmins,E1\n",
			want:    []string{"E1:Sales", "E2:Ops", "E1:Admins"}, counts: []int{2},
			stats: Stats{Users: 2, Groups: 3, Memberships: 3}, issues: []string{"duplicate_membership@5"},
		},
		{
			name: "rows with errors give no groups", groups: []GroupColumn{{Column: "department_name"}},
			users: uhdr + ",department_name\nE1,not-an-address,A,B,Sales\nE2,b@x.com,A,B,Ops\n",
			want:  []string{"E2:Ops"}, counts: []int{1}, issues: []string{"invalid_email@2:email"},
		},
		{
			name: "a column the file lacks", groups: []GroupColumn{dept, {Column: "cost_center_name"}},
			users: uhdr + ",department_name\nE1,a@x.com,A,B,Sales\n",
			want:  []string{"E1:Department: Sales"}, counts: []int{1, 0}, issues: []string{"missing_column@1:cost_center_name"},
			more: func(t *testing.T, c *Checker) {
				msg := c.Issues()[0].Message
				if !strings.Contains(msg, "groups_from_columns") || !strings.Contains(msg, "would end every membership") {
					t.Errorf("missing column message = %q; want it to name the setting and what would happen", msg)
				}
			},
		},
		{
			name: "a user in more groups than a chain holds", groups: []GroupColumn{{Column: "groups", Separator: "|"}},
			users:   uhdr + ",groups\nE1,a@x.com,A,B," + manyGroups(40) + "|g1\n",
			members: "group_name,user_id\ng41,E1\ng40,E1\n",
			want:    append(groupList("E1", 40), "E1:g41"), counts: []int{40}, stats: Stats{Users: 1, Groups: 41, Memberships: 41}, issues: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapping(tt.columns, nil, "", tt.groups...)
			if err != nil {
				t.Fatal(err)
			}
			c := NewChecker(Limits{}, nil)
			c.SetMapping(m)
			got := []string{}
			if _, err := c.Users(strings.NewReader(tt.users), "users.csv", func(u *User) error {
				for _, g := range u.Groups {
					got = append(got, u.ID+":"+g)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tt.members != "" {
				if _, err := c.UserGroups(strings.NewReader(tt.members), "user_groups.csv", func(m *Membership) error {
					got = append(got, m.UserID+":"+m.GroupName)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("memberships (-want +got):\n%s", diff)
			}
			var counts []int
			for _, d := range c.GroupsDerived() {
				counts = append(counts, d.Memberships)
			}
			if diff := cmp.Diff(tt.counts, counts); diff != "" {
				t.Errorf("GroupsDerived memberships (-want +got):\n%s", diff)
			}
			if tt.stats != (Stats{}) && c.Stats() != tt.stats {
				t.Errorf("Stats() = %+v; want %+v", c.Stats(), tt.stats)
			}
			if diff := cmp.Diff(tt.issues, brief(c.Issues())); diff != "" {
				t.Errorf("issues (-want +got):\n%s\n%v", diff, c.Issues())
			}
			if tt.more != nil {
				tt.more(t, c)
			}
		})
	}
}

func manyGroups(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(" | ")
		}
		b.WriteString("g" + itoa(i))
	}
	return b.String()
}

func groupList(user string, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, user+":g"+itoa(i))
	}
	return out
}

const uhdr = "user_id,email,first_name,last_name"

// TestDeriveGroupsNeedUsers checks that an organization that derives
// groups refuses a user_groups.csv without users.csv: alone it would end
// every derived membership.
func TestDeriveGroupsNeedUsers(t *testing.T) {
	m, err := NewMapping(nil, nil, "", GroupColumn{Column: "department_name"})
	if err != nil {
		t.Fatal(err)
	}
	c := NewChecker(Limits{}, func(string) bool { return true })
	c.SetMapping(m)
	n := 0
	if _, err := c.UserGroups(strings.NewReader("group_name,user_id\nSales,E1\n"), "user_groups.csv", func(*Membership) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"users_file_required@0"}, brief(c.Issues())); diff != "" {
		t.Fatalf("issues (-want +got):\n%s", diff)
	}
	if n != 0 || c.GroupsDerived() != nil {
		t.Errorf("UserGroups gave %d memberships and GroupsDerived %v; want none", n, c.GroupsDerived())
	}
	if msg := c.Issues()[0].Message; !strings.Contains(msg, "together with users.csv") {
		t.Errorf("message = %q; want it to say what to upload", msg)
	}
}

// TestDeriveNoAllocs checks that deriving groups costs no allocation per
// row: a name is made once per group, not per membership. Beyond what the
// same rows cost without groups_from_columns, the checker reads 20,000
// rows of 40 departments, 10 sites and two teams each with about as many
// allocations as 2,000 (the membership set's amortized growth).
func TestDeriveNoAllocs(t *testing.T) {
	m, err := NewMapping(nil, nil, "", GroupColumn{Column: "department_name", Template: tmpl("Department: {value}")},
		GroupColumn{Column: "work_address_locality"}, GroupColumn{Column: "teams", Separator: ";"})
	if err != nil {
		t.Fatal(err)
	}
	file := func(n int) string {
		var b strings.Builder
		b.WriteString(uhdr + ",department_name,work_address_locality,teams\n")
		for i := range n {
			b.WriteString("E" + itoa(i) + ",u" + itoa(i) + "@x.com,Ann,Lee,Dept " + itoa(i%40) + ",Site " + itoa(i%10) + ",Team " + itoa(i%7) + "; Team " + itoa(i%11) + "\n")
		}
		return b.String()
	}
	allocs := func(m *Mapping, in string) float64 {
		return testing.AllocsPerRun(3, func() {
			c := NewChecker(Limits{}, nil)
			c.SetMapping(m)
			n := 0
			if _, err := c.Users(strings.NewReader(in), "users.csv", func(u *User) error { n += len(u.Groups); return nil }); err != nil || c.Errors() > 0 || (m != nil) != (n > 0) {
				t.Fatalf("Users: %v %v, %d groups", err, c.Issues(), n)
			}
		})
	}
	small, big := file(2000), file(20000)
	derived := allocs(m, big) - allocs(m, small)
	plain := allocs(nil, big) - allocs(nil, small)
	if perRow := (derived - plain) / 18000; perRow > 0.003 {
		t.Errorf("deriving groups costs %.4f allocations per row (%.0f more for 18,000 more rows, %.0f without groups); want none", perRow, derived, plain)
	}
}
