package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rosterd/rosterd/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testTime = time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

// render returns the three renderings of r.
func render(t *testing.T, r *Report) (txt, js, issues []byte) {
	t.Helper()
	var a, b, c bytes.Buffer
	if err := r.WriteText(&a); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteIssuesCSV(&c); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes(), c.Bytes()
}

func TestBatchReportGolden(t *testing.T) {
	r := &Report{
		Version: Version, BatchID: "01JDXK2Q7T9Y3M4N5P6R7S8T9V", OrganizationID: "acme", Status: "held", CreatedAt: testTime,
		Files: []File{
			{Name: "users.csv", Kind: schema.Users, Size: 123456, SHA256: strings.Repeat("ab", 32), Rows: 1180},
			{Name: "user_groups.csv", Kind: schema.UserGroups, Size: 5400, SHA256: strings.Repeat("cd", 32), Rows: 300},
		},
		Counts:  Counts{Users: 1180, Groups: 12, Memberships: 299},
		Changes: Changes{UsersCreated: 3, UsersUpdated: 10, UsersDeactivated: 1, UsersDeleted: 250, GroupsCreated: 1, MembershipsAdded: 4, MembershipsRemoved: 40},
		Issues: []schema.Issue{
			{File: "user_groups.csv", Line: 12, Code: "duplicate_membership", Severity: schema.SeverityWarning, Message: `user "E1001" in group "Sales" already appears on line 4; the repeat is ignored`},
		},
		IssuesTotal:       1,
		IssueCounts:       map[string]int{"duplicate_membership": 1},
		Notes:             []string{"This batch would delete 250 of 1,430 active users (17%), more than the threshold. Upload the files again, or ask the operator to approve batch 01JDXK2Q7T9Y3M4N5P6R7S8T9V."},
		OperatorNotes:     []string{"Release it with `rosterd batch approve acme 01JDXK2Q7T9Y3M4N5P6R7S8T9V`."},
		RemovedUsersTotal: 251,
		RemovedUsers: []RemovedUser{
			{Change: Deactivated, ID: "E1001", Email: "ann.lee@example.com", FirstName: "Ann", LastName: "Lee"},
			{Change: Deleted, ID: "E1002", Email: "bo@example.com", FirstName: "Bo\x1b[2J", LastName: "Li"},
			{Change: Deleted, ID: "E1003", Email: "cy@example.com", FirstName: "Cy", LastName: ""},
		},
	}
	txt, js, csv := render(t, r)
	golden(t, "testdata/batch-held.txt", txt)
	golden(t, "testdata/batch-held.json", js)
	golden(t, "testdata/batch-held-issues.csv", csv)
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, back); diff != "" {
		t.Errorf("JSON round trip (-report +decoded):\n%s", diff)
	}
	var cust bytes.Buffer
	r.ForCustomer().WriteText(&cust)
	if strings.Contains(cust.String(), "rosterd batch approve") || !strings.Contains(string(txt), "rosterd batch approve") {
		t.Errorf("the operator's notes are in the customer's copy, or missing from the operator's:\n%s", cust.String())
	}
}

// TestRemovedUsersStreamed: WriteJSON streams AllRemoved in place of
// RemovedUsers, one user per line, and the result decodes to all of them.
func TestRemovedUsersStreamed(t *testing.T) {
	r := &Report{Version: Version, Status: "held", CreatedAt: testTime, RemovedUsersTotal: 5000,
		RemovedUsers: []RemovedUser{{Change: Deleted, ID: "U0"}}}
	r.AllRemoved = func(yield func(RemovedUser) error) error {
		for i := range 5000 {
			if err := yield(RemovedUser{Change: Deleted, ID: fmt.Sprintf("U%d", i), Email: fmt.Sprintf("u%d@x.com", i)}); err != nil {
				return err
			}
		}
		return nil
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("streamed JSON does not decode: %v", err)
	}
	if len(back.RemovedUsers) != 5000 || back.RemovedUsers[4999].ID != "U4999" {
		t.Errorf("decoded %d removed users; want 5000", len(back.RemovedUsers))
	}
	if n := bytes.Count(js.Bytes(), []byte("\n    {\"change\"")); n != 5000 {
		t.Errorf("%d users on lines of their own; want 5000", n)
	}
}

func TestValidateGolden(t *testing.T) {
	users := "user_id,email,first_name,last_name,status\n" +
		"E1001,ann@example.com,Ann,Lee,active\n" +
		"E1002,=HYPERLINK(\"x\")@example.com,Bo,Li,\n" +
		"E1001,zoë@example.com,Zoë,\"Müller, Jr.\",gone\n"
	groups := "group_name,user_id\nSales,E1001\nSales,E1001\nSales,E9\n"
	r, err := Validate([]Input{
		{Name: "user_groups.csv", R: strings.NewReader(groups)},
		{Name: "users.csv", R: strings.NewReader(users)},
	}, schema.Limits{}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusInvalid {
		t.Errorf("Status = %q; want invalid", r.Status)
	}
	txt, js, csv := render(t, r)
	golden(t, "testdata/validate-invalid.txt", txt)
	golden(t, "testdata/validate-invalid.json", js)
	golden(t, "testdata/validate-invalid-issues.csv", csv)
	if !bytes.Contains(csv, []byte(`'=HYPERLINK`)) {
		t.Errorf("issues CSV does not defuse a formula:\n%s", csv)
	}
}

func TestValidateTruncated(t *testing.T) {
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name\n")
	for i := 0; i < 1200; i++ {
		fmt.Fprintf(&b, "E%d,not-an-address,A,\n", i)
	}
	r, err := Validate([]Input{{Name: "users.csv", R: strings.NewReader(b.String())}}, schema.Limits{}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Issues) != schema.MaxIssues || r.IssuesTotal != 2400 {
		t.Fatalf("listed %d of %d issues; want %d of 2400", len(r.Issues), r.IssuesTotal, schema.MaxIssues)
	}
	var txt bytes.Buffer
	r.WriteText(&txt)
	tail := txt.String()[strings.Index(txt.String(), "Only the first"):]
	golden(t, "testdata/validate-truncated-tail.txt", []byte(tail))
	if !strings.HasPrefix(txt.String(), "NOT VALID: 2,400 errors must be fixed") {
		t.Errorf("headline = %q", strings.SplitN(txt.String(), "\n", 2)[0])
	}
}

// TestJSONText checks that the JSON and the text carry the same content:
// every issue of the JSON appears, as one line, in the text.
func TestJSONText(t *testing.T) {
	users := "user_id,email,first_name,last_name\nE1,a@x.com,A,B\nE1,b@x,A,\n"
	r, err := Validate([]Input{{Name: "users.csv", R: strings.NewReader(users)}}, schema.Limits{}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	txt, js, _ := render(t, r)
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, back); diff != "" {
		t.Errorf("JSON round trip (-report +decoded):\n%s", diff)
	}
	for _, is := range back.Issues {
		line := fmt.Sprintf("%s: %s", where(is), is.Message)
		if !strings.Contains(string(txt), line) {
			t.Errorf("text lacks %q", line)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	_, err := Validate([]Input{{Name: "people.csv", R: strings.NewReader("")}}, schema.Limits{}, testTime)
	if err == nil || !strings.Contains(err.Error(), "people.csv") {
		t.Errorf("Validate(people.csv) = %v; want ErrUnknownKind", err)
	}
	_, err = Validate([]Input{{Name: "users.csv", R: strings.NewReader("")}, {Name: "users_2.csv", R: strings.NewReader("")}}, schema.Limits{}, testTime)
	if err == nil {
		t.Errorf("Validate(two users files) = nil; want ErrSameKind")
	}
}

// TestExamples checks the committed reports beside examples/csv so they
// never go stale (go test -update rewrites them).
func TestExamples(t *testing.T) {
	dirs, _ := filepath.Glob("../../examples/csv/*")
	more, _ := filepath.Glob("../../examples/csv/broken/*")
	dirs = append(dirs, more...)
	n := 0
	for _, dir := range dirs {
		names, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
		var in []Input
		for _, name := range names {
			if _, ok := schema.KindOf(name); !ok {
				continue
			}
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			in = append(in, Input{Name: filepath.Base(name), R: bytes.NewReader(data)})
		}
		if len(in) == 0 {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r, err := Validate(in, schema.Limits{}, testTime)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus := StatusInvalid
			if filepath.Base(filepath.Dir(dir)) != "broken" {
				wantStatus = StatusValid
			}
			if r.Status != wantStatus {
				t.Errorf("Status = %q; want %q", r.Status, wantStatus)
			}
			txt, js, csv := render(t, r)
			golden(t, filepath.Join(dir, "report.txt"), txt)
			golden(t, filepath.Join(dir, "report.json"), js)
			if len(r.Issues) > 0 {
				golden(t, filepath.Join(dir, "report-issues.csv"), csv)
			}
		})
	}
	if n < 6 {
		t.Errorf("found %d example sets; want at least 6", n)
	}
}

// TestValidateMappedGolden is the report of a BambooHR-style export read
// with an organization's mapping, one file of it compressed: the files
// name the upload and the CSV inside, and a section says how each column
// was read.
func TestValidateMappedGolden(t *testing.T) {
	m, err := schema.NewMapping(map[string]string{
		"Employee #": "user_id", "Work Email": "email", "First Name": "first_name", "Last Name": "last_name",
		"Department": "department_name", "Location": "work_address_locality", "Employment Status": "status",
		"Hire Date": "employment_start_date", "Pronouns": "custom:pronouns", "SSN": "drop",
	}, map[string]string{"Terminated": "inactive", "On Leave": "active"}, "MM/DD/YYYY")
	if err != nil {
		t.Fatal(err)
	}
	users := "Employee #,First Name,Last Name,Work Email,Department,Location,Employment Status,Hire Date,SSN,Pronouns\n" +
		"101,Ann,Lee,ann@example.com,Sales,Lyon,Active,03/01/2021,123-45-6789,she/her\n" +
		"102,Bob,Ray,bob@example.com,R&D,Oslo,On Leave,12/31/2019,987-65-4321,\n" +
		"103,Cy,Ng,cy@example.com,R&D,Oslo,Retired,2/30/2020,,\n"
	groups := "group_name,description\nSales,The sales team\n"
	r, err := ValidateWith([]Input{
		{Name: "users.csv", R: strings.NewReader(users), Outer: &File{Name: "users.csv.gz", Size: 230, SHA256: strings.Repeat("ef", 32), Decoded: "gzip-compressed"}},
		{Name: "groups.csv", R: strings.NewReader(groups)},
	}, Options{Mapping: m}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	txt, js, _ := render(t, r)
	golden(t, "testdata/validate-mapped.txt", txt)
	golden(t, "testdata/validate-mapped.json", js)
}

// TestValidateDerivedGolden is the report of an HR export whose
// memberships come from its department and location columns and a
// multi-valued column, joined with a user_groups.csv: a section names the
// columns and the memberships each gave.
func TestValidateDerivedGolden(t *testing.T) {
	dept := "Department: {value}"
	m, err := schema.NewMapping(map[string]string{"Department": "department_name", "Office": "work_address_locality"}, nil, "",
		schema.GroupColumn{Column: "department_name", Template: &dept},
		schema.GroupColumn{Column: "work_address_locality"},
		schema.GroupColumn{Column: "groups", Separator: ";"})
	if err != nil {
		t.Fatal(err)
	}
	users := "user_id,email,first_name,last_name,Department,Office,groups\n" +
		"E1,ann@example.com,Ann,Lee,Sales,Lyon,VPN; Admins\n" +
		"E2,bob@example.com,Bob,Ray,R&D,,VPN\n" +
		"E3,cy@example.com,Cy,Ng,,Oslo,\n"
	members := "group_name,user_id\nAdmins,E1\nOn call,E2\n"
	r, err := ValidateWith([]Input{
		{Name: "users.csv", R: strings.NewReader(users)},
		{Name: "user_groups.csv", R: strings.NewReader(members)},
	}, Options{Mapping: m}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	txt, js, _ := render(t, r)
	golden(t, "testdata/validate-derived.txt", txt)
	golden(t, "testdata/validate-derived.json", js)
}

// TestPlanHeadline checks that a dry run's report never says the files
// were applied: each outcome reads "PLAN: these files would ...".
func TestPlanHeadline(t *testing.T) {
	tests := []struct {
		status string
		errs   int
		want   string
	}{
		{"applied", 0, "PLAN: these files would be applied and make the changes below. Nothing was changed yet."},
		{"unchanged", 0, "PLAN: these files would change nothing: they are valid and match what is already there."},
		{"rejected", 2, "PLAN: these files would be rejected: they have 2 errors. Fix them before uploading; nothing was changed."},
		{"held", 0, "PLAN: these files would be held: they are valid but would remove many users, so an operator would have to approve them. See the notes below. Nothing was changed."},
	}
	for _, tt := range tests {
		r := &Report{Version: Version, Status: tt.status, DryRun: true, CreatedAt: testTime, IssuesTotal: tt.errs}
		for range tt.errs {
			r.Issues = append(r.Issues, schema.Issue{File: "users.csv", Line: 2, Code: "invalid_email", Severity: schema.SeverityError, Message: "bad"})
		}
		var buf bytes.Buffer
		if err := r.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := strings.Cut(buf.String(), "\n"); got != tt.want {
			t.Errorf("dry run %s: headline = %q; want %q", tt.status, got, tt.want)
		}
		r.DryRun = false
		buf.Reset()
		r.WriteText(&buf)
		if strings.HasPrefix(buf.String(), "PLAN") {
			t.Errorf("batch %s: headline = %q; want no PLAN", tt.status, buf.String())
		}
	}
}
