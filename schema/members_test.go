package schema

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// memberRow is one row of a generated user_groups.csv.
type memberRow struct{ group, user string }

// modelMembers is what UserGroups must find in rows (line 2 onwards) when
// known tells which users exist: the issues in line order and the
// memberships fn sees.
func modelMembers(rows []memberRow, known func(string) bool) (issues []string, got []Membership) {
	first := map[memberRow]int{}
	for i, r := range rows {
		line := i + 2
		if !known(r.user) {
			issues = append(issues, fmt.Sprintf("unknown_user@%d:user_id", line))
			continue
		}
		if prev, ok := first[r]; ok {
			issues = append(issues, fmt.Sprintf("duplicate_membership@%d %s", line,
				msgf("user %q in group %q already appears on line %d; the repeat is ignored", r.user, r.group, prev)))
			continue
		}
		first[r] = line
		got = append(got, Membership{Line: line, GroupName: r.group, UserID: r.user})
	}
	return issues, got
}

func memberCSV(rows []memberRow) string {
	var b strings.Builder
	b.WriteString("group_name,user_id\n")
	for _, r := range rows {
		b.WriteString(r.group + "," + r.user + "\n")
	}
	return b.String()
}

// memberSets generates files of nu users: in user order, in group order,
// shuffled, with repeats near and far, and users in more groups than a
// chain holds.
func memberSets(rng *rand.Rand, nu int) map[string][]memberRow {
	var byUser []memberRow
	for u := range nu {
		k := 1 + rng.IntN(4)
		if u%50 == 7 {
			k = maxChain*3 + rng.IntN(20) // past the chain limit
		}
		for g := range k {
			byUser = append(byUser, memberRow{fmt.Sprintf("G%d", (u*7+g*13)%(k*5+1)+g), fmt.Sprintf("U%d", u)})
		}
	}
	sets := map[string][]memberRow{}
	sets["by user"] = byUser
	byGroup := append([]memberRow(nil), byUser...)
	slicesSortStable(byGroup)
	sets["by group"] = byGroup
	with := func(rows []memberRow, far bool) []memberRow {
		out := append([]memberRow(nil), rows...)
		for range len(rows) / 5 {
			r := rows[rng.IntN(len(rows))]
			i := len(out)
			if !far {
				i = rng.IntN(len(out) + 1)
			}
			out = append(out[:i], append([]memberRow{r}, out[i:]...)...)
		}
		return out
	}
	sets["by user, repeats anywhere"] = with(byUser, false)
	sets["by user, repeats at the end"] = with(byUser, true)
	sets["by group, repeats anywhere"] = with(byGroup, false)
	shuffled := with(byUser, false)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	sets["shuffled"] = shuffled
	big := []memberRow{}
	for g := range 400 {
		big = append(big, memberRow{fmt.Sprintf("G%d", g), "U1"}, memberRow{fmt.Sprintf("G%d", g%7), "U2"})
	}
	sets["two users, one in 400 groups"] = with(big, false)
	return sets
}

func slicesSortStable(rows []memberRow) {
	for i := 1; i < len(rows); i++ { // insertion sort keeps it stable
		for j := i; j > 0 && rows[j].group < rows[j-1].group; j-- {
			rows[j], rows[j-1] = rows[j-1], rows[j]
		}
	}
}

// TestMembershipsMatchModel checks duplicate memberships, unknown users,
// the callback and the stats against a map, for files in every order,
// with and without a users file.
func TestMembershipsMatchModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const nu = 300
	var users strings.Builder
	users.WriteString(hdr)
	for u := range nu {
		if u%11 != 3 { // some users are unknown
			fmt.Fprintf(&users, "U%d,u%d@x.com,A,B\n", u, u)
		}
	}
	inUsers := func(id string) bool {
		var u int
		fmt.Sscanf(id, "U%d", &u)
		return u%11 != 3
	}
	modes := []struct {
		name   string
		users  string
		exists func(string) bool
		known  func(string) bool
	}{
		{"users file", users.String(), nil, inUsers},
		{"snapshot lookup", "", func(id string) bool { return len(id)%2 == 0 }, func(id string) bool { return len(id)%2 == 0 }},
		{"broken users file", "user_id,first_name\nU1,A\n", nil, func(string) bool { return true }},
	}
	for name, rows := range memberSets(rng, nu) {
		for _, m := range modes {
			t.Run(name+"/"+m.name, func(t *testing.T) {
				c := NewChecker(Limits{}, m.exists)
				if m.users != "" {
					if _, err := c.Users(strings.NewReader(m.users), "users.csv", nil); err != nil {
						t.Fatal(err)
					}
				}
				before := len(c.Issues())
				var got []Membership
				if _, err := c.UserGroups(strings.NewReader(memberCSV(rows)), "user_groups.csv", func(mb *Membership) error {
					got = append(got, *mb)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				wantIssues, wantGot := modelMembers(rows, m.known)
				var issues []string
				for _, is := range c.Issues()[before:] {
					s := brief([]Issue{is})[0]
					if is.Code == CodeDuplicateMember {
						s += " " + is.Message
					}
					issues = append(issues, s)
				}
				if len(wantIssues) > MaxIssues-before {
					wantIssues = wantIssues[:MaxIssues-before]
				}
				if diff := cmp.Diff(wantIssues, issues); diff != "" {
					t.Errorf("issues (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantGot, got); diff != "" {
					t.Errorf("memberships (-want +got):\n%s", diff)
				}
				if n := c.Stats().Memberships; n != len(wantGot) {
					t.Errorf("Stats().Memberships = %d; want %d", n, len(wantGot))
				}
			})
		}
	}
}
