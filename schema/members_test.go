package schema

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	var repeated strings.Builder // some user_ids twice, near and far
	repeated.WriteString(hdr)
	for u := range nu {
		fmt.Fprintf(&repeated, "U%d,u%d@x.com,A,B\n", u, u)
		if u%7 == 2 {
			fmt.Fprintf(&repeated, "U%d,v%d@x.com,A,B\n", u, u)
		}
		if u%13 == 4 {
			fmt.Fprintf(&repeated, "U%d,w%d@x.com,A,B\n", u/2, u)
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
		{"users file with repeated user_ids", repeated.String(), nil, func(string) bool { return true }},
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

// lenReader is a reader that claims n bytes are left, whatever it holds.
type lenReader struct {
	r io.Reader
	n int
}

func (r lenReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r lenReader) Len() int { return r.n }

// TestPresizeWrongEstimate checks that the tables sized from a file's size
// change nothing when the size is unknown, right, far too small or far too
// large, or when the first rows are much shorter or longer than the rest.
func TestPresizeWrongEstimate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var users, members strings.Builder
	users.WriteString(hdr)
	members.WriteString("group_name,user_id\n")
	const nu = 5000
	for u := range nu {
		id, pad := u, ""
		if u > 2000 {
			pad = strings.Repeat("x", 200) // rows longer than the first ones
		}
		if u%997 == 5 {
			id = rng.IntN(u + 1) // a duplicate user_id, near or far
		}
		email := fmt.Sprintf("u%d@x.com", u)
		if u%1009 == 8 {
			email = fmt.Sprintf("U%d@X.com", rng.IntN(u+1))
		}
		fmt.Fprintf(&users, "U%d,%s,A%s,B\n", id, email, pad)
		for g := range 1 + u%4 {
			fmt.Fprintf(&members, "G%d,U%d\n", g*u%17, u)
		}
		if u%13 == 0 {
			fmt.Fprintf(&members, "G%d,U%d\n", rng.IntN(17), rng.IntN(u+1))
		}
	}
	type result struct {
		Issues []Issue
		Stats  Stats
		Users  []string
		Member []Membership
	}
	// The readers cannot seek, so that duplicate emails are not read again.
	run := func(wrap func(s string) io.Reader) result {
		var r result
		c := NewChecker(Limits{}, nil)
		if _, err := c.Users(wrap(users.String()), "users.csv", func(u *User) error { r.Users = append(r.Users, u.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UserGroups(wrap(members.String()), "user_groups.csv", func(m *Membership) error { r.Member = append(r.Member, *m); return nil }); err != nil {
			t.Fatal(err)
		}
		r.Issues, r.Stats = c.Issues(), c.Stats()
		return r
	}
	want := run(func(s string) io.Reader { return struct{ io.Reader }{strings.NewReader(s)} })
	if want.Stats.Users < nu-10 || want.Stats.Memberships < nu || len(want.Issues) < 10 {
		t.Fatalf("the test file is not what it should be: %+v, %d issues", want.Stats, len(want.Issues))
	}
	for name, wrap := range map[string]func(string) io.Reader{
		"right size": func(s string) io.Reader { return lenReader{strings.NewReader(s), len(s)} },
		"too small":  func(s string) io.Reader { return lenReader{strings.NewReader(s), 10} },
		"too large":  func(s string) io.Reader { return lenReader{strings.NewReader(s), 1 << 26} },
		"short rows": func(s string) io.Reader {
			return lenReader{strings.NewReader(s), len(s) / 20}
		},
	} {
		if diff := cmp.Diff(want, run(wrap)); diff != "" {
			t.Errorf("%s: (-unknown size +%s):\n%s", name, name, diff)
		}
	}
}

func TestRemaining(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.csv")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(3, io.SeekStart)
	sr := strings.NewReader("abcdef")
	sr.Seek(2, io.SeekStart)
	for _, tt := range []struct {
		name string
		r    io.Reader
		want int64
	}{
		{"file at 3", f, 7},
		{"strings.Reader at 2", sr, 4},
		{"seeker only", struct{ io.ReadSeeker }{sr}, 4},
		{"plain reader", struct{ io.Reader }{sr}, -1},
	} {
		if got := remaining(tt.r); got != tt.want {
			t.Errorf("remaining(%s) = %d; want %d", tt.name, got, tt.want)
		}
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 3 {
		t.Errorf("remaining moved the file to %d", off)
	}
	if off, _ := sr.Seek(0, io.SeekCurrent); off != 2 {
		t.Errorf("remaining moved the reader to %d", off)
	}
}

// TestMembershipsAcrossBlocks checks chains that run across the entry
// blocks: more memberships than a block holds, each user's spread far
// apart, repeats of the first ones at the end.
func TestMembershipsAcrossBlocks(t *testing.T) {
	const nu = 1<<entryBlockBits/2 + 100
	var rows []memberRow
	for g := range 3 {
		for u := range nu {
			rows = append(rows, memberRow{fmt.Sprintf("G%d", g), fmt.Sprintf("U%d", u)})
		}
	}
	for u := 0; u < nu; u += 97 {
		rows = append(rows, memberRow{"G0", fmt.Sprintf("U%d", u)}, memberRow{"G2", fmt.Sprintf("U%d", u)})
	}
	all := func(string) bool { return true }
	c := NewChecker(Limits{}, all)
	var got []Membership
	if _, err := c.UserGroups(strings.NewReader(memberCSV(rows)), "user_groups.csv", func(m *Membership) error {
		got = append(got, *m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantIssues, wantGot := modelMembers(rows, all)
	var issues []string
	for _, is := range c.Issues() {
		issues = append(issues, brief([]Issue{is})[0]+" "+is.Message)
	}
	if diff := cmp.Diff(wantIssues, issues); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantGot, got); diff != "" {
		t.Errorf("memberships (-want +got):\n%s", diff)
	}
	if c.members.entries.n <= 1<<entryBlockBits {
		t.Errorf("%d entries: the test does not cross a block", c.members.entries.n)
	}
}

// TestMembershipOfRepeatedUserID checks that a user_id repeated in
// users.csv has one list of memberships, whichever of its lines the
// users file's order leads to.
func TestMembershipOfRepeatedUserID(t *testing.T) {
	c := NewChecker(Limits{}, nil)
	c.Users(strings.NewReader(hdr+"U1,a@x.com,A,B\nU2,b@x.com,A,B\nU3,c@x.com,A,B\nU1,d@x.com,A,B\nU4,e@x.com,A,B\n"), "users.csv", nil)
	var got []Membership
	c.UserGroups(strings.NewReader("group_name,user_id\nG1,U1\nG2,U3\nG1,U1\nG2,U4\n"), "user_groups.csv", func(m *Membership) error {
		got = append(got, *m)
		return nil
	})
	want := []Membership{{2, "G1", "U1"}, {3, "G2", "U3"}, {5, "G2", "U4"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("memberships (-want +got):\n%s", diff)
	}
	if is := c.Issues(); len(is) != 3 || is[2].Code != CodeDuplicateMember || is[2].Line != 4 {
		t.Errorf("issues = %v; want the two duplicate_user_id, then duplicate_membership@4", brief(is))
	}
}

// TestMembershipStrings checks that the strings a UserGroups callback gets
// (made once per group and once per run of a user's rows) hold each row's
// values, and still do after later rows.
func TestMembershipStrings(t *testing.T) {
	c := NewChecker(Limits{}, func(string) bool { return true })
	in := "group_name,user_id\nG1,A\nG2,A\nG1,B\nG1,A2\nG3,B\nG3,A\nG2,B\n"
	var got []Membership
	_, err := c.UserGroups(strings.NewReader(in), "user_groups.csv", func(m *Membership) error {
		got = append(got, *m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Membership{{2, "G1", "A"}, {3, "G2", "A"}, {4, "G1", "B"}, {5, "G1", "A2"}, {6, "G3", "B"}, {7, "G3", "A"}, {8, "G2", "B"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("memberships (-want +got):\n%s", diff)
	}
}
