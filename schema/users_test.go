package schema

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// brief renders issues as "code@line:column" for compact tables.
func brief(issues []Issue) []string {
	out := []string{}
	for _, is := range issues {
		s := fmt.Sprintf("%s@%d", is.Code, is.Line)
		if is.Column != "" {
			s += ":" + is.Column
		}
		out = append(out, s)
	}
	return out
}

const hdr = "user_id,email,first_name,last_name\n"

func TestUsersRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		rows int // rows passed to fn (duplicates are found after fn saw them)
	}{
		{"valid", hdr + "E1,a@x.com,Ann,Lee\nE2,b@x.com,Bob,Ray\n", []string{}, 2},
		{"missing user_id column", "email,first_name,last_name\na@x.com,A,B\n", []string{"missing_column@1:user_id"}, 0},
		{"lookalike column", "User ID,email,first_name,last_name\nE1,a@x.com,A,B\n", []string{"missing_column@1:user_id"}, 0},
		{"no header", "E1,a@x.com,Ann,Lee\n", []string{"missing_column@1:user_id", "missing_column@1:email", "missing_column@1:first_name", "missing_column@1:last_name", "missing_column@1"}, 0},
		{"duplicate column", "user_id,email,first_name,last_name,Email\nE1,a@x.com,A,B,c@x.com\n", []string{"duplicate_column@1:Email"}, 0},
		{"status and state", "user_id,email,first_name,last_name,status,state\nE1,a@x.com,A,B,active,active\n", []string{"duplicate_column@1:state"}, 0},
		{"empty file", "", []string{"empty_file@0"}, 0},
		{"only blank lines", "\n\r\n\n", []string{"empty_file@0"}, 0},
		{"header only", hdr, []string{"no_rows@0"}, 0},
		{"missing values", hdr + "E1,,Ann,Lee\n,b@x.com,Bob,Ray\nE3,c@x.com,,\n", []string{"missing_value@2:email", "missing_value@3:user_id", "missing_value@4:first_name", "missing_value@4:last_name"}, 0},
		{"invalid email", hdr + "E1,ann.x.com,Ann,Lee\nE2,b@x,Bob,Ray\nE3,c@x.com;d@x.com,C,D\nE4,c d@x.com,C,D\nE5,@x.com,C,D\nE6,\"Ann <a@x.com>\",A,B\nE7,a@@x.com,A,B\nE8,a@x..com,A,B\nE9,élodie@exämple.fr,É,L\n",
			[]string{"invalid_email@2:email", "invalid_email@3:email", "invalid_email@4:email", "invalid_email@5:email", "invalid_email@6:email", "invalid_email@7:email", "invalid_email@8:email", "invalid_email@9:email"}, 1},
		{"duplicate user_id both lines", hdr + "E1,a@x.com,A,B\nE2,b@x.com,A,B\nE1,c@x.com,A,B\nE1,d@x.com,A,B\n",
			[]string{"duplicate_user_id@2:user_id", "duplicate_user_id@4:user_id", "duplicate_user_id@5:user_id"}, 4},
		{"duplicate email ignoring case", hdr + "E1,Ann@X.com,A,B\nE2,ann@x.COM,A,B\nE3,ÉLO@x.com,A,B\nE4,élo@x.com,A,B\n",
			[]string{"duplicate_email@2:email", "duplicate_email@3:email", "duplicate_email@4:email", "duplicate_email@5:email"}, 4},
		{"status values", "user_id,email,first_name,last_name,Status\nE1,a@x.com,A,B,Active\nE2,b@x.com,A,B,TERMINATED\nE3,c@x.com,A,B,\nE4,d@x.com,A,B,gone\nE5,e@x.com,A,B,0\n",
			[]string{"invalid_status@5:Status"}, 4},
		{"state alias", "user_id,email,first_name,last_name,state\nE1,a@x.com,A,B,suspended\nE2,b@x.com,A,B,yes\n", []string{"invalid_status@3:state"}, 1},
		{"dates", "user_id,email,first_name,last_name,employment_start_date\nE1,a@x.com,A,B,2024-02-29\nE2,b@x.com,A,B,2023-02-29\nE3,c@x.com,A,B,31/12/2020\nE4,d@x.com,A,B,soon\nE5,e@x.com,A,B,\nE6,f@x.com,A,B,1 March 2024\n",
			[]string{"invalid_date@3:employment_start_date", "date_format@4:employment_start_date", "invalid_date@5:employment_start_date", "date_format@7:employment_start_date"}, 4},
		{"wrong field count", hdr + "E1,a@x.com,Ann,Lee,Jr\nE2,b@x.com,Bob\nE3,c@x.com,C,D,,\n", []string{"wrong_field_count@2", "wrong_field_count@3"}, 1},
		{"bad quote", hdr + "E1,a@x.com,\"Ann\"x,Lee\nE2,b@x.com,B,C\n", []string{"bad_quote@2:first_name"}, 1},
		{"unclosed quote", hdr + "E1,a@x.com,Ann,Lee\nE2,b@x.com,\"Bob,Ray\nE3,c@x.com,C,D\n", []string{"unclosed_quote@3:first_name"}, 1},
		{"bare quote kept", hdr + "E1,a@x.com,John \"Jack\",Lee\n", []string{}, 1},
		{"unnamed column", "user_id,email,first_name,last_name,,\nE1,a@x.com,A,B,,\nE2,b@x.com,A,B,x,\nE3,c@x.com,A,B,y,\n", []string{"unnamed_column@3"}, 3},
		{"windows-1252", hdr + "E1,a@x.com,Ann,Lee\nE2,b@x.com,Ren\xe9e,Lee\nE3,c@x.com,Zo\xeb,Lee\n", []string{"invalid_utf8@3:first_name"}, 1},
		{"xlsx", "PK\x03\x04\x14\x00\x06\x00", []string{"not_csv@0"}, 0},
		{"multi-line line numbers", "user_id,email,first_name,last_name,work_address_street\nE1,a@x.com,A,B,\"1 Main St\nSuite 2\"\nE1,b@x.com,A,B,x\n",
			[]string{"duplicate_user_id@2:user_id", "duplicate_user_id@4:user_id"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(Limits{}, nil)
			rows := 0
			_, err := c.Users(strings.NewReader(tt.in), "users.csv", func(*User) error { rows++; return nil })
			if err != nil {
				t.Fatalf("Users: %v", err)
			}
			if diff := cmp.Diff(tt.want, brief(c.Issues())); diff != "" {
				t.Errorf("Users(%q) issues (-want +got):\n%s\n%v", tt.in, diff, c.Issues())
			}
			if rows != tt.rows {
				t.Errorf("Users(%q) called fn %d times; want %d", tt.in, rows, tt.rows)
			}
			// The nil-callback path reports the same issues.
			c2 := NewChecker(Limits{}, nil)
			c2.Users(strings.NewReader(tt.in), "users.csv", nil)
			if diff := cmp.Diff(c.Issues(), c2.Issues()); diff != "" {
				t.Errorf("Users(%q) with nil fn differs (-fn +nil):\n%s", tt.in, diff)
			}
		})
	}
}

func TestUsersMessage(t *testing.T) {
	c := NewChecker(Limits{}, nil)
	in := hdr + "E1001,a@x.com,A,B\nE1002,b@x.com,A,B\nE1003,c@x.com,A,B\nE1007,d@x.com,A,B\nE1004,e@x.com,A,B\nE1005,f@x.com,A,B\nE1006,g@x.com,A,B\nE1007,h@x.com,A,B\n"
	c.Users(strings.NewReader(in), "users.csv", nil)
	got := c.Issues()
	want := []Issue{
		{File: "users.csv", Line: 5, Column: "user_id", Value: "E1007", Code: "duplicate_user_id", Severity: SeverityError, Message: `user_id "E1007" also appears on line 9 — each person must appear once`},
		{File: "users.csv", Line: 9, Column: "user_id", Value: "E1007", Code: "duplicate_user_id", Severity: SeverityError, Message: `user_id "E1007" also appears on line 5 — each person must appear once`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
}

func TestUserFields(t *testing.T) {
	in := "\ufeff USER_ID ;Email;First_Name;Last_Name;Job_Title;status;Preferred Language;cost center\r\n" +
		"E1;ann@x.com;\" Zoë \";\"O'Brien; Jr.\";\"Engineer, \"\"Senior\"\"\";inactive;fr;\r\n"
	c := NewChecker(Limits{}, nil)
	var got []User
	_, err := c.Users(strings.NewReader(in), "users.csv", func(u *User) error {
		v := *u
		v.Custom = append([]Attr(nil), u.Custom...)
		got = append(got, v)
		return nil
	})
	if err != nil || len(c.Issues()) != 0 {
		t.Fatalf("Users: %v %v", err, c.Issues())
	}
	want := User{Line: 2, ID: "E1", Email: "ann@x.com", FirstName: "Zoë", LastName: "O'Brien; Jr.", Active: false,
		Custom: []Attr{{"Preferred Language", "fr"}}}
	want.Known[JobTitle] = `Engineer, "Senior"`
	if diff := cmp.Diff([]User{want}, got); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
}

func TestIssueCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(hdr)
	for i := 0; i < 1500; i++ {
		fmt.Fprintf(&b, "E%d,bad,A,B\n", i)
	}
	b.WriteString("E1,x@x.com,A,B\n") // a duplicate of line 3, reported late for line 3
	c := NewChecker(Limits{}, nil)
	c.Users(strings.NewReader(b.String()), "users.csv", nil)
	is := c.Issues()
	if len(is) != MaxIssues {
		t.Fatalf("len(Issues()) = %d; want %d", len(is), MaxIssues)
	}
	if c.Errors() != 1502 || c.IssueCounts()["invalid_email"] != 1500 || c.IssueCounts()["duplicate_user_id"] != 2 {
		t.Errorf("Errors() = %d, counts %v", c.Errors(), c.IssueCounts())
	}
	if is[2].Line != 3 || is[2].Code != "duplicate_user_id" {
		t.Errorf("Issues()[2] = %+v; want the late duplicate issue of line 3", is[2])
	}
	for i := 1; i < len(is); i++ {
		if is[i].Line < is[i-1].Line {
			t.Fatalf("issues out of line order at %d: %d < %d", i, is[i].Line, is[i-1].Line)
		}
	}
}

func TestValueCut(t *testing.T) {
	long := strings.Repeat("é", 100)
	c := NewChecker(Limits{}, nil)
	c.Users(strings.NewReader(hdr+"E1,"+long+",A,B\n"), "users.csv", nil)
	v := c.Issues()[0].Value
	if n := len([]rune(v)); n != 80 || !strings.HasSuffix(v, "…") {
		t.Errorf("Value = %q (%d characters); want 80 ending in …", v, n)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		ok   bool
	}{
		{"users.csv", Users, true},
		{"USERS.CSV", Users, true},
		{"users_20261122.csv", Users, true},
		{"dir/user_groups.csv", UserGroups, true},
		{`C:\x\User_Groups-2.csv`, UserGroups, true},
		{"groups.csv", Groups, true},
		{"users.csv.filepart", "", false},
		{"people.csv", "", false},
	}
	for _, tt := range tests {
		k, ok := KindOf(tt.name)
		if k != tt.kind || ok != tt.ok {
			t.Errorf("KindOf(%q) = %q, %v; want %q, %v", tt.name, k, ok, tt.kind, tt.ok)
		}
	}
}

// TestUserStringsKept checks that the strings of every User stay those of
// its row after the later rows (and chunks) have been read: they are
// slices of a chunk's text, made once per chunk.
func TestUserStringsKept(t *testing.T) {
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name,team\n")
	const n = 3 * chunkRecs
	for i := range n {
		fmt.Fprintf(&b, "E%d, e%d@x.com ,Zoë%d,\"Smith, %d\",t%d\n", i, i, i, i, i%3)
	}
	c := NewChecker(Limits{}, nil)
	var got []User
	_, err := c.Users(strings.NewReader(b.String()), "users.csv", func(u *User) error {
		v := *u
		v.Custom = append([]Attr(nil), u.Custom...)
		got = append(got, v)
		return nil
	})
	if err != nil || len(got) != n || c.Errors() != 0 {
		t.Fatalf("%d users, err %v, issues %v", len(got), err, c.Issues())
	}
	for i, u := range got {
		want := User{Line: i + 2, ID: fmt.Sprintf("E%d", i), Email: fmt.Sprintf("e%d@x.com", i), FirstName: fmt.Sprintf("Zoë%d", i),
			LastName: fmt.Sprintf("Smith, %d", i), Active: true, Custom: []Attr{{"team", fmt.Sprintf("t%d", i%3)}}}
		if diff := cmp.Diff(want, u); diff != "" {
			t.Fatalf("user %d (-want +got):\n%s", i, diff)
		}
	}
}

// TestErrorRows checks FileResult.ErrorRows: rows with at least one
// error, each counted once, including the first row of a duplicate found
// only when the window is flushed.
func TestErrorRows(t *testing.T) {
	tests := []struct {
		name            string
		in              string
		rows, errorRows int
	}{
		{"valid", hdr + "E1,a@x.com,Ann,Lee\nE2,b@x.com,Bob,Ray\n", 2, 0},
		{"five of six bad", hdr + "E1,a@x.com,Ann,Lee\nE2,,Bob,Ray\nE3,c@x,C,D\n,d@x.com,D,E\nE5,e@x.com,,\nE6,f@x.com,F,G,H\n", 6, 5},
		{"two errors one row", hdr + "E1,not-an-address,,Lee\nE2,b@x.com,Bob,Ray\n", 2, 1},
		{"duplicate pair", hdr + "E1,a@x.com,Ann,Lee\nE2,b@x.com,Bob,Ray\nE1,a@x.com,Ann,Lee\n", 3, 2},
		{"three times", hdr + "E1,a@x.com,A,B\nE1,b@x.com,A,B\nE1,c@x.com,A,B\nE4,d@x.com,A,B\n", 4, 3},
		{"bad utf-8 rows", hdr + "E1,a@x.com,Ren\xe9e,Lee\nE2,b@x.com,Zo\xeb,Lee\nE3,c@x.com,C,D\n", 3, 2},
		{"header only", hdr, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(Limits{}, nil)
			res, err := c.Users(strings.NewReader(tt.in), "users.csv", nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != tt.rows || res.ErrorRows != tt.errorRows {
				t.Errorf("Users(%q) = %d rows, %d with errors; want %d, %d (issues %v)", tt.in, res.Rows, res.ErrorRows, tt.rows, tt.errorRows, brief(c.Issues()))
			}
		})
	}
}
