package schema

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUserGroupsRules(t *testing.T) {
	users := hdr + "E1,a@x.com,A,B\nE2,b@x.com,A,B\n"
	tests := []struct {
		name   string
		users  string // "" = the batch has no users.csv
		exists func(string) bool
		in     string
		want   []string
		got    []Membership
	}{
		{"valid", users, nil, "group_name,user_id\nSales,E1\nSales,E2\nOps,E1\n", []string{},
			[]Membership{{2, "Sales", "E1"}, {3, "Sales", "E2"}, {4, "Ops", "E1"}}},
		{"unknown user in batch", users, nil, "group_name,user_id\nSales,E1\nSales,E9\n", []string{"unknown_user@3:user_id"},
			[]Membership{{2, "Sales", "E1"}}},
		{"repeated row is a warning, counted once", users, nil, "group_name,user_id\nSales,E1\nSales,E1\n", []string{"duplicate_membership@3"},
			[]Membership{{2, "Sales", "E1"}}},
		{"snapshot lookup", "", func(id string) bool { return id == "E5" }, "group_name,user_id\nSales,E5\nSales,E1\n", []string{"unknown_user@3:user_id"},
			[]Membership{{2, "Sales", "E5"}}},
		{"no users anywhere", "", nil, "group_name,user_id\nSales,E5\n", []string{"unknown_user@2:user_id"}, nil},
		{"missing values", users, nil, "group_name,user_id\n,E1\nSales,\n", []string{"missing_value@2:group_name", "missing_value@3:user_id"}, nil},
		{"missing column", users, nil, "group,user_id\nSales,E1\n", []string{"missing_column@1:group_name"}, nil},
		{"extra column ignored", users, nil, "group_name,user_id,email\nSales,E1,a@x.com\n", []string{"ignored_column@1:email"},
			[]Membership{{2, "Sales", "E1"}}},
		{"broken users.csv: no reference flood", "user_id,first_name\nE1,A\n", nil, "group_name,user_id\nSales,E7\n", []string{"missing_column@1:email", "missing_column@1:last_name"},
			[]Membership{{2, "Sales", "E7"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(Limits{}, tt.exists)
			if tt.users != "" {
				if _, err := c.Users(strings.NewReader(tt.users), "users.csv", nil); err != nil {
					t.Fatal(err)
				}
			}
			var got []Membership
			res, err := c.UserGroups(strings.NewReader(tt.in), "user_groups.csv", func(m *Membership) error { got = append(got, *m); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, brief(c.Issues())); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.got, got); diff != "" {
				t.Errorf("memberships (-want +got):\n%s", diff)
			}
			if res.Rows != strings.Count(tt.in, "\n")-1 && len(tt.want) == 0 {
				t.Errorf("Rows = %d", res.Rows)
			}
		})
	}
}

func TestGroupsRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		got  []Group
	}{
		{"valid", "group_name,group_id,description,Owner\nSales,G1,\"Sales, EMEA\",ann\nOps,,,\n", []string{},
			[]Group{{Line: 2, Name: "Sales", ID: "G1", Description: "Sales, EMEA", Custom: []Attr{{"Owner", "ann"}}}, {Line: 3, Name: "Ops"}}},
		{"duplicate name", "group_name\nSales\nOps\nSales\n", []string{"duplicate_group_name@2:group_name", "duplicate_group_name@4:group_name"},
			[]Group{{Line: 2, Name: "Sales"}, {Line: 3, Name: "Ops"}}},
		{"duplicate id", "group_name,group_id\nSales,G1\nOps,G1\nDev,\nQA,\n", []string{"duplicate_group_id@2:group_id", "duplicate_group_id@3:group_id"},
			[]Group{{Line: 2, Name: "Sales", ID: "G1"}, {Line: 4, Name: "Dev"}, {Line: 5, Name: "QA"}}},
		{"missing name", "group_name,description\n,x\n", []string{"missing_value@2:group_name"}, nil},
		{"missing column", "name,description\nSales,x\n", []string{"missing_column@1:group_name"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(Limits{}, nil)
			var got []Group
			_, err := c.Groups(strings.NewReader(tt.in), "groups.csv", func(g *Group) error {
				v := *g
				v.Custom = append([]Attr(nil), g.Custom...)
				if len(v.Custom) == 0 {
					v.Custom = nil
				}
				got = append(got, v)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, brief(c.Issues())); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.got, got); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStats(t *testing.T) {
	c := NewChecker(Limits{}, nil)
	c.Users(strings.NewReader(hdr+"E1,a@x.com,A,B\nE2,b@x.com,A,B\n"), "users.csv", nil)
	c.Groups(strings.NewReader("group_name\nSales\nEmpty\n"), "groups.csv", nil)
	c.UserGroups(strings.NewReader("group_name,user_id\nSales,E1\nSales,E1\nOps,E2\n"), "user_groups.csv", nil)
	want := Stats{Users: 2, Groups: 3, Memberships: 2}
	if got := c.Stats(); got != want {
		t.Errorf("Stats() = %+v; want %+v", got, want)
	}
}

func TestCallbackError(t *testing.T) {
	c := NewChecker(Limits{}, nil)
	stop := errorString("stop")
	_, err := c.Users(strings.NewReader(hdr+"E1,a@x.com,A,B\nE2,b@x.com,A,B\n"), "users.csv", func(*User) error { return stop })
	if err != stop {
		t.Errorf("Users returned %v; want the callback's error", err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
