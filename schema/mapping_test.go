package schema

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNewMappingRefuses checks that a mapping is refused with a message
// that names the setting and the names at fault, and accepted otherwise.
func TestNewMappingRefuses(t *testing.T) {
	tests := []struct {
		name    string
		columns map[string]string
		status  map[string]string
		date    string
		want    []string // substrings of the problems, in order; nil = valid
	}{
		{"empty", nil, nil, "", nil},
		{"valid", map[string]string{"Employee ID": "user_id", "Work Email": "EMAIL", "Cost Center": "custom:cost_center", "SSN": "drop", "Group": "group_name"},
			map[string]string{"Terminated": "inactive", "On Leave": "active", "Suspended": "Active"}, "MM/DD/YYYY", nil},
		{"state and status aliases", map[string]string{"Employment Status": "state"}, nil, "", nil},
		{"unknown column", map[string]string{"Employee ID": "userid"}, nil, "",
			[]string{`columns: "Employee ID" is mapped onto "userid", which is not a column of users.csv, user_groups.csv or groups.csv (did you mean user_id?); to keep it as a custom attribute write "custom:userid", to leave it out write "drop"`}},
		{"two sources onto one column", map[string]string{"Employee ID": "user_id", "Worker ID": "user_id", "Email": "email"}, nil, "",
			[]string{`columns: "Employee ID" and "Worker ID" are both mapped onto user_id`}},
		{"status and state are one column", map[string]string{"A": "status", "B": "state"}, nil, "",
			[]string{`columns: "A" and "B" are both mapped onto status`}},
		{"two sources onto one custom attribute", map[string]string{"A": "custom:X", "B": "custom:x"}, nil, "",
			[]string{`columns: "A" and "B" are both mapped onto custom:x`}},
		{"source twice ignoring case", map[string]string{"Employee ID": "user_id", "employee id ": "user_id"}, nil, "",
			[]string{`columns: "Employee ID" and "employee id" are the same column`}},
		{"custom without a name", map[string]string{"A": "custom:"}, nil, "", []string{`columns: "A" is mapped onto "custom:": write the custom attribute's name`}},
		{"custom named like a column", map[string]string{"A": "custom:Email"}, nil, "", []string{`but email is a column's name: map it onto email instead`}},
		{"empty source", map[string]string{" ": "user_id"}, nil, "", []string{"columns: a column without a name cannot be mapped"}},
		{"status onto no status", nil, map[string]string{"On Leave": "away"}, "", []string{`status_values: "On Leave" is mapped onto "away", which is not a status`}},
		{"status onto nothing", nil, map[string]string{"On Leave": ""}, "", []string{`status_values: "On Leave" is mapped onto ""`}},
		{"status twice", nil, map[string]string{"Leave": "active", "LEAVE": "inactive"}, "", []string{`status_values: "LEAVE" and "Leave" are the same value`}},
		{"bad date format", nil, nil, "MM/DD/YY", []string{`date_format: "MM/DD/YY" is not a date format`}},
		{"mixed separators", nil, nil, "MM/DD.YYYY", []string{`date_format: "MM/DD.YYYY"`}},
		{"repeated part", nil, nil, "MM/MM/YYYY", []string{`date_format: "MM/MM/YYYY"`}},
		{"every problem", map[string]string{"X": "nope"}, map[string]string{"Y": "maybe"}, "soon",
			[]string{`"X" is mapped onto "nope"`, `"Y" is mapped onto "maybe"`, `date_format: "soon"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMapping(tt.columns, tt.status, tt.date)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("NewMapping = %v; want no error", err)
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

// TestMappingHeader checks how mapped headers are read: the users the
// callback gets, the issues, and how each column is reported.
func TestMappingHeader(t *testing.T) {
	bamboo := map[string]string{
		"Employee #": "user_id", "Work Email": "email", "First Name": "first_name", "Last Name": "last_name",
		"Department": "department_name", "Location": "work_address_locality", "Employment Status": "status",
		"Hire Date": "employment_start_date", "Pronouns": "custom:pronouns", "SSN": "drop",
	}
	tests := []struct {
		name    string
		columns map[string]string
		status  map[string]string
		date    string
		in      string
		want    []string // users as id|email|first|last|active|department|start|custom
		issues  []string
		read    []string
	}{
		{
			name: "bamboohr", columns: bamboo, status: map[string]string{"Terminated": "inactive", "On Leave": "active"}, date: "MM/DD/YYYY",
			in: "Employee #,First Name,Last Name,Work Email,Department,Location,Employment Status,Hire Date,SSN,Pronouns,Shirt\n" +
				"101,Ann,Lee,ann@x.com,Sales,Lyon,Active,03/01/2021,123-45-6789,she/her,M\n" +
				"102,Bob,Ray,bob@x.com,R&D,Oslo,On Leave,12/31/2019,987-65-4321,,L\n" +
				"103,Cy,Ng,cy@x.com,R&D,Oslo,terminated,2/3/2020,,,\n",
			want: []string{
				"101|ann@x.com|Ann|Lee|true|Sales|2021-03-01|pronouns=she/her,Shirt=M",
				"102|bob@x.com|Bob|Ray|true|R&D|2019-12-31|Shirt=L",
				"103|cy@x.com|Cy|Ng|false|R&D|2020-02-03|",
			},
			issues: []string{},
			read: []string{`"Employee #" user_id`, `"First Name" first_name`, `"Last Name" last_name`, `"Work Email" email`, `"Department" department_name`,
				`"Location" work_address_locality`, `"Employment Status" status`, `"Hire Date" employment_start_date`, `"SSN" drop`, `"Pronouns" custom:pronouns`, `"Shirt" custom:Shirt`},
		},
		{
			name: "a canonical name mapped away", columns: map[string]string{"Email": "custom:personal_email", "Work Email": "email"},
			in:   "user_id,Email,Work Email,first_name,last_name\nE1,me@home.net,e1@x.com,A,B\n",
			want: []string{"E1|e1@x.com|A|B|true|||personal_email=me@home.net"}, issues: []string{},
			read: []string{`"user_id" user_id`, `"Email" custom:personal_email`, `"Work Email" email`, `"first_name" first_name`, `"last_name" last_name`},
		},
		{
			name: "mapped and canonical both present", columns: map[string]string{"Employee ID": "user_id"},
			in:     "Employee ID,user_id,email,first_name,last_name\n1,E1,a@x.com,A,B\n",
			want:   []string{},
			issues: []string{"duplicate_column@1:user_id"},
		},
		{
			name: "required source missing", columns: map[string]string{"Employee ID": "user_id"},
			in:     "Worker,email,first_name,last_name\n1,a@x.com,A,B\n",
			want:   []string{},
			issues: []string{"missing_column@1:user_id"},
		},
		{
			name: "a mapping that names no column of the file", columns: map[string]string{"Employee ID": "user_id"},
			in: hdr + "E1,a@x.com,A,B\n", want: []string{"E1|a@x.com|A|B|true|||"}, issues: []string{},
		},
		{
			name: "dates that do not fit the format", date: "DD.MM.YYYY",
			in: "user_id,email,first_name,last_name,employment_start_date\n" +
				"E1,a@x.com,A,B,31.12.2020\nE2,b@x.com,A,B,2021-01-05\nE3,c@x.com,A,B,12/31/2020\nE4,d@x.com,A,B,31.02.2020\nE5,e@x.com,A,B,soon\n",
			want:   []string{"E1|a@x.com|A|B|true||2020-12-31|", "E2|b@x.com|A|B|true||2021-01-05|", "E3|c@x.com|A|B|true||12/31/2020|"},
			issues: []string{"date_format@4:employment_start_date", "invalid_date@5:employment_start_date", "invalid_date@6:employment_start_date"},
		},
		{
			name: "status value map wins over the built-in words", status: map[string]string{"suspended": "active"},
			in:     "user_id,email,first_name,last_name,status\nE1,a@x.com,A,B,Suspended\nE2,b@x.com,A,B,gone\n",
			want:   []string{"E1|a@x.com|A|B|true|||"},
			issues: []string{"invalid_status@3:status"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapping(tt.columns, tt.status, tt.date)
			if err != nil {
				t.Fatal(err)
			}
			c := NewChecker(Limits{}, nil)
			c.SetMapping(m)
			got := []string{}
			_, err = c.Users(strings.NewReader(tt.in), "users.csv", func(u *User) error {
				var custom []string
				for _, a := range u.Custom {
					custom = append(custom, a.Name+"="+a.Value)
				}
				got = append(got, strings.Join([]string{u.ID, u.Email, u.FirstName, u.LastName, map[bool]string{true: "true", false: "false"}[u.Active],
					u.Known[DepartmentName], u.Known[EmploymentStartDate], strings.Join(custom, ",")}, "|"))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.issues != nil {
				if diff := cmp.Diff(tt.issues, brief(c.Issues())); diff != "" {
					t.Errorf("issues (-want +got):\n%s\n%v", diff, c.Issues())
				}
			}
			if c.Errors() == 0 {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("users (-want +got):\n%s", diff)
				}
			}
			if tt.read != nil {
				var read []string
				for _, r := range c.ColumnsRead() {
					read = append(read, strings.Join([]string{`"` + r.Column + `"`, r.ReadAs}, " "))
				}
				if diff := cmp.Diff(tt.read, read); diff != "" {
					t.Errorf("ColumnsRead (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestMappingMessages checks the words an admin reads when a mapped file
// goes wrong: they name the source column and the mapping.
func TestMappingMessages(t *testing.T) {
	tests := []struct {
		name    string
		columns map[string]string
		status  map[string]string
		date    string
		in      string
		want    string
	}{
		{"both present", map[string]string{"Employee ID": "user_id"}, nil, "", "Employee ID,user_id,email,first_name,last_name\n1,E1,a@x.com,A,B\n",
			`the columns "Employee ID" (column 1, read as user_id by the organization's mapping) and "user_id" (column 2) are read as the same column: leave one of them out of the export, or change the mapping`},
		{"source missing", map[string]string{"Employee ID": "user_id", "Worker": "user_id_x"}, nil, "", "", ""},
		{"required source missing", map[string]string{"Employee ID": "user_id"}, nil, "", "Worker,email,first_name,last_name\n1,a@x.com,A,B\n",
			`the header has no user_id column, which is required; the organization's mapping reads "Employee ID" as user_id, and the header has no such column either`},
		{"status hint", nil, map[string]string{"Terminated": "inactive", "On Leave": "active"}, "", "user_id,email,first_name,last_name,status\nE1,a@x.com,A,B,away\n",
			`"away" is not a known status: use active (or leave it empty) for people who are active, and inactive, suspended, disabled, terminated or deprovisioned for people who are not; the organization's settings also read "On Leave" as active, "Terminated" as inactive`},
		{"date format", nil, nil, "MM/DD/YYYY", "user_id,email,first_name,last_name,employment_start_date\nE1,a@x.com,A,B,31/12/2020\n",
			`"31/12/2020" looks like a date written as DD/MM/YYYY; the organization's settings read dates as MM/DD/YYYY (or YYYY-MM-DD), and this value is not a date written so`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapping(tt.columns, tt.status, tt.date)
			if tt.in == "" {
				if err == nil {
					t.Fatalf("NewMapping(%v) accepted a mapping onto an unknown column", tt.columns)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := NewChecker(Limits{}, nil)
			c.SetMapping(m)
			if _, err := c.Users(strings.NewReader(tt.in), "users.csv", nil); err != nil {
				t.Fatal(err)
			}
			is := c.Issues()
			if len(is) != 1 || is[0].Message != tt.want {
				t.Errorf("issues = %+v;\nwant one with message %q", is, tt.want)
			}
		})
	}
}

// TestDateLayouts is a row per date format and value: what the value
// reads as, or "" when it is not a date in that format.
func TestDateLayouts(t *testing.T) {
	tests := []struct{ format, in, want string }{
		{"MM/DD/YYYY", "03/01/2024", "2024-03-01"},
		{"MM/DD/YYYY", "3/1/2024", "2024-03-01"},
		{"mm/dd/yyyy", "12/31/1999", "1999-12-31"},
		{"MM/DD/YYYY", "13/01/2024", ""},
		{"MM/DD/YYYY", "02/29/2023", ""},
		{"MM/DD/YYYY", "02/29/2024", "2024-02-29"},
		{"MM/DD/YYYY", "03/01/24", ""},
		{"MM/DD/YYYY", "03-01-2024", ""},
		{"MM/DD/YYYY", "03/01/2024x", ""},
		{"MM/DD/YYYY", "003/01/2024", ""},
		{"DD/MM/YYYY", "31/12/2020", "2020-12-31"},
		{"DD.MM.YYYY", "01.03.2024", "2024-03-01"},
		{"DD.MM.YYYY", "1.3.2024", "2024-03-01"},
		{"YYYYMMDD", "20240301", "2024-03-01"},
		{"YYYYMMDD", "2024031", ""},
		{"YYYYMMDD", "20241301", ""},
		{"DDMMYYYY", "01032024", "2024-03-01"},
		{"YYYY/MM/DD", "2024/3/1", "2024-03-01"},
		{"DD MM YYYY", "01 03 2024", "2024-03-01"},
		{"excel", "45352", "2024-03-01"},
		{"Excel serial", "45352.75", "2024-03-01"},
		{"excel", "1", "1900-01-01"},
		{"excel", "59", "1900-02-28"},
		{"excel", "60", ""},
		{"excel", "61", "1900-03-01"},
		{"excel", "25569", "1970-01-01"},
		{"excel", "2958465", "9999-12-31"},
		{"excel", "2958466", ""},
		{"excel", "0", ""},
		{"excel", "-5", ""},
		{"excel", "4535x", ""},
		{"excel", "12345678", ""},
	}
	for _, tt := range tests {
		l, ok := parseDateLayout(tt.format)
		if !ok {
			t.Fatalf("parseDateLayout(%q) refused", tt.format)
		}
		buf := []byte("prefix")
		out, ok := l.appendISO(buf, []byte(tt.in))
		got := ""
		if ok {
			got = string(out[len("prefix"):])
		} else if string(out) != "prefix" {
			t.Errorf("appendISO(%q, %q) changed dst on failure: %q", tt.format, tt.in, out)
		}
		if got != tt.want {
			t.Errorf("%s: appendISO(%q) = %q; want %q", tt.format, tt.in, got, tt.want)
		}
	}
}

// TestMappingNoAllocs checks that a mapped file with a status value map
// and a date format costs no allocation per row beyond the canonical
// path's: the checker reads 20,000 mapped rows with about as many
// allocations as 2,000.
func TestMappingNoAllocs(t *testing.T) {
	m, err := NewMapping(map[string]string{"Employee ID": "user_id", "Mail": "email", "Given": "first_name", "Family": "last_name", "Start": "employment_start_date", "State": "status"},
		map[string]string{"On Leave": "active", "Terminated": "inactive"}, "MM/DD/YYYY")
	if err != nil {
		t.Fatal(err)
	}
	file := func(n int) string {
		var b strings.Builder
		b.WriteString("Employee ID,Mail,Given,Family,Start,State,Extra\n")
		for i := range n {
			b.WriteString("E")
			b.WriteString(itoa(i))
			b.WriteString(",u")
			b.WriteString(itoa(i))
			b.WriteString("@x.com,Ann,Lee,03/01/2024,On Leave,x\n")
		}
		return b.String()
	}
	allocs := func(in string) float64 {
		return testing.AllocsPerRun(3, func() {
			c := NewChecker(Limits{}, nil)
			c.SetMapping(m)
			if _, err := c.Users(strings.NewReader(in), "users.csv", nil); err != nil || c.Errors() > 0 {
				t.Fatalf("Users: %v %v", err, c.Issues())
			}
		})
	}
	small, big := allocs(file(2000)), allocs(file(20000))
	if perRow := (big - small) / 18000; perRow > 0.01 {
		t.Errorf("a mapped file costs %.3f allocations per row (%.0f for 2,000 rows, %.0f for 20,000); want none", perRow, small, big)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// FuzzMappedUsers reads any bytes as a users.csv under a mapping with a
// status value map and each date format: never a panic; every user the
// callback gets is complete, and its employment_start_date is empty or
// YYYY-MM-DD (a value the format cannot read is an issue, not a user).
func FuzzMappedUsers(f *testing.F) {
	seeds(f)
	f.Add([]byte("Employee ID,Mail,Given,Family,Start,State\nE1,a@x.com,A,B,03/01/2024,On Leave\nE2,b@x.com,C,D,2/30/2024,x\n"))
	f.Add([]byte("Employee ID,Mail,Given,Family,Start\nE1,a@x.com,A,B,45352\nE2,b@x.com,C,D,20240301\n"))
	formats := []string{"MM/DD/YYYY", "DD.MM.YYYY", "YYYYMMDD", "excel", "YYYY MM DD"}
	maps := make([]*Mapping, len(formats))
	for i, df := range formats {
		m, err := NewMapping(map[string]string{"Employee ID": "user_id", "Mail": "email", "Given": "first_name", "Family": "last_name", "Start": "employment_start_date", "State": "status", "Secret": "drop", "Extra": "custom:x"},
			map[string]string{"On Leave": "active", "Gone": "inactive"}, df)
		if err != nil {
			f.Fatal(err)
		}
		maps[i] = m
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, m := range maps {
			c := NewChecker(fuzzLimits, nil)
			c.SetMapping(m)
			if _, err := c.Users(bytes.NewReader(in), "users.csv", func(u *User) error {
				if u.ID == "" || u.Email == "" || u.FirstName == "" || u.LastName == "" {
					t.Errorf("callback got an incomplete user %+v", u)
				}
				if d := u.Known[EmploymentStartDate]; d != "" && !isISODate([]byte(d)) {
					if ok, form := dateForm([]byte(d)); ok || form == "" {
						t.Errorf("callback got employment_start_date %q, neither ISO nor a reported other form", d)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			checkIssues(t, c, in)
		}
	})
}
