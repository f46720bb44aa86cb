package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// wdRef is a Workday reference field: a descriptor and typed IDs.
type wdRef struct {
	Descriptor string `xml:"Descriptor,attr"`
	IDs        []struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"ID"`
}

func (r wdRef) id(typ string) string {
	for _, id := range r.IDs {
		if id.Type == typ {
			return id.Value
		}
	}
	return ""
}

// wdEntry is one wd:Report_Entry of examples/workday/worker_directory.xml,
// read with encoding/xml: an independent reading of the sample to hold the
// stylesheets' output against.
type wdEntry struct {
	Worker     wdRef   `xml:"Worker"`
	EmployeeID string  `xml:"Employee_ID"`
	FirstName  string  `xml:"First_Name"`
	LastName   string  `xml:"Last_Name"`
	Email      string  `xml:"Email_-_Primary_Work"`
	Title      string  `xml:"Business_Title"`
	HireDate   string  `xml:"Hire_Date"`
	Active     string  `xml:"Active_Status"`
	Department wdRef   `xml:"Department"`
	CostCenter wdRef   `xml:"Cost_Center"`
	Location   wdRef   `xml:"Location"`
	Country    wdRef   `xml:"Location_Address_-_Country"`
	Manager    wdRef   `xml:"Manager"`
	Teams      []wdRef `xml:"Team"`
}

func readWorkdaySample(t *testing.T) []wdEntry {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir(t), "workday", "worker_directory.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name  `xml:"urn:com.workday.report/INT_rosterd_Worker_Directory Report_Data"`
		Entries []wdEntry `xml:"Report_Entry"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse worker_directory.xml: %v", err)
	}
	return doc.Entries
}

// xslt runs xsltproc with stylesheet on the Workday sample and returns the
// output.
func xslt(t *testing.T, stylesheet string) []byte {
	t.Helper()
	bin := sftptest.LookPath(t, "xsltproc")
	dir := filepath.Join(examplesDir(t), "workday")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, filepath.Join(dir, stylesheet), filepath.Join(dir, "worker_directory.xml"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("xsltproc %s: %v\n%s", stylesheet, err, stderr.String())
	}
	return out
}

func readCSV(t *testing.T, name string, b []byte) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("%s is not RFC 4180 CSV: %v", name, err)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = r[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// TestWorkdayXSLT runs both stylesheets on the sample with xsltproc and
// checks the output three ways: against examples/workday/expected/, field
// by field against the XML read independently, and with `rosterd
// validate`, which must find it valid with no warning.
func TestWorkdayXSLT(t *testing.T) {
	entries := readWorkdaySample(t)
	if len(entries) < 5 {
		t.Fatalf("sample has %d workers; want the whole sample", len(entries))
	}
	out := t.TempDir()
	files := map[string]string{"users.csv": "workday_users.xsl", "user_groups.csv": "workday_user_groups.xsl"}
	got := map[string][]byte{}
	for name, xsl := range files {
		got[name] = xslt(t, xsl)
		if err := os.WriteFile(filepath.Join(out, name), got[name], 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(examplesDir(t), "workday", "expected", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[name], want) {
			t.Errorf("xsltproc %s differs from examples/workday/expected/%s (regenerate it with xsltproc if the change is meant):\n%s",
				xsl, name, cmp.Diff(string(want), string(got[name])))
		}
	}

	users := readCSV(t, "users.csv", got["users.csv"])
	if len(users) != len(entries) {
		t.Fatalf("users.csv has %d rows; want one per worker, %d", len(users), len(entries))
	}
	sawQuote, sawComma, sawNonASCII := false, false, false
	var wantMembers, gotMembers []string
	for i, e := range entries {
		u := users[i]
		status := "inactive"
		if e.Active == "1" {
			status = "active"
		}
		want := map[string]string{
			"user_id": e.EmployeeID, "email": e.Email, "first_name": e.FirstName, "last_name": e.LastName,
			"display_name": e.Worker.Descriptor, "job_title": e.Title, "employment_start_date": e.HireDate[:10],
			"department_name": e.Department.Descriptor, "cost_center_name": e.CostCenter.Descriptor,
			"manager_id": e.Manager.id("Employee_ID"), "manager_name": e.Manager.Descriptor,
			"work_address_country": e.Country.id("ISO_3166-1_Alpha-2_Code"), "status": status,
			"location": e.Location.Descriptor, "workday_id": e.Worker.id("WID"),
		}
		for col, v := range want {
			if u[col] != v {
				t.Errorf("users.csv row %d %s = %q; want %q from the XML", i+1, col, u[col], v)
			}
		}
		sawQuote = sawQuote || strings.Contains(e.Title, `"`)
		sawComma = sawComma || strings.Contains(e.CostCenter.Descriptor, ",")
		sawNonASCII = sawNonASCII || strings.ContainsFunc(e.FirstName+e.LastName, func(r rune) bool { return r > 127 })
		for kind, refs := range map[string][]wdRef{"Department": {e.Department}, "Location": {e.Location}, "Cost Center": {e.CostCenter}, "Team": e.Teams} {
			for _, r := range refs {
				wantMembers = append(wantMembers, kind+": "+r.Descriptor+"|"+e.EmployeeID)
			}
		}
	}
	if !sawQuote || !sawComma || !sawNonASCII {
		t.Errorf("the sample must exercise quoting: a quote %v, a comma %v, non-ASCII names %v", sawQuote, sawComma, sawNonASCII)
	}
	for _, m := range readCSV(t, "user_groups.csv", got["user_groups.csv"]) {
		gotMembers = append(gotMembers, m["group_name"]+"|"+m["user_id"])
	}
	slices.Sort(wantMembers)
	slices.Sort(gotMembers)
	if diff := cmp.Diff(wantMembers, gotMembers); diff != "" {
		t.Errorf("user_groups.csv memberships differ from the XML's (-xml +csv):\n%s", diff)
	}

	args := []string{"validate", filepath.Join(out, "users.csv"), filepath.Join(out, "user_groups.csv")}
	text, code := runBinary(t, "", args...)
	if code != 0 || !strings.Contains(text, "VALID") {
		t.Fatalf("rosterd validate on the XSLT output = %d\n%s\nwant exit 0, valid", code, text)
	}
	raw, code := runBinary(t, "", append(args, "--json")...)
	var rep map[string]any
	if err := json.Unmarshal([]byte(raw), &rep); err != nil || code != 0 {
		t.Fatalf("rosterd validate --json = %d %q: %v", code, raw, err)
	}
	if countOf(rep, "users") != len(entries) || countOf(rep, "memberships") != len(wantMembers) || rep["issues_total"] != 0.0 {
		t.Errorf("validate --json: users %d, memberships %d, issues %v; want %d, %d, 0 (not even a warning)",
			countOf(rep, "users"), countOf(rep, "memberships"), rep["issues_total"], len(entries), len(wantMembers))
	}
}

// TestWorkdayUpload delivers the stylesheets' output the way Workday's SFTP
// step does (to the final names, one session) and checks the batch is
// applied with the directory the XML describes.
func TestWorkdayUpload(t *testing.T) {
	entries := readWorkdaySample(t)
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "1s"}})
	// Workday exports its public key in the RFC 4716 "SSH2" form.
	key := newClientKey(t)
	rfc4716, err := exec.Command(sftptest.LookPath(t, "ssh-keygen"), "-e", "-f", key+".pub").Output()
	if err != nil || !strings.HasPrefix(string(rfc4716), "---- BEGIN SSH2 PUBLIC KEY ----") {
		t.Fatalf("ssh-keygen -e: %v %q", err, rfc4716)
	}
	pub := filepath.Join(t.TempDir(), "workday.pub")
	os.WriteFile(pub, rfc4716, 0o644)
	if out, code := d.CLI("", "org", "add", "workday", "--key", pub); code != 0 {
		t.Fatalf("org add workday --key <RFC 4716 key> = %d %q", code, out)
	}
	src := t.TempDir()
	users, groups := filepath.Join(src, "users.csv"), filepath.Join(src, "user_groups.csv")
	os.WriteFile(users, xslt(t, "workday_users.xsl"), 0o644)
	os.WriteFile(groups, xslt(t, "workday_user_groups.xsl"), 0o644)
	if out, ok := sftpBatch(t, d, key, "workday", "put "+users+" users.csv\nput "+groups+" user_groups.csv\n"); !ok {
		t.Fatalf("sftp upload failed:\n%s", out)
	}
	if !ingestWired(t, d, "workday") {
		t.Skip("uploaded; the rest waits on the ingest pipeline (no batches API yet)")
	}
	rep := waitLatestReport(t, d, "workday", 30*time.Second, func(rep map[string]any) bool { return reportHasFile(rep, "user_groups.csv") })
	if rep["status"] != "applied" || countOf(rep, "users") != len(entries) {
		t.Fatalf("report status %v, users %d; want applied, %d\n%v", rep["status"], countOf(rep, "users"), len(entries), rep)
	}
	for _, e := range entries {
		var u struct {
			Email     string
			FirstName string `json:"first_name"`
			LastName  string `json:"last_name"`
			JobTitle  string `json:"job_title"`
			State     string
		}
		if code := d.API("GET", "/v1/organizations/workday/users/"+e.EmployeeID, nil, &u); code != 200 {
			t.Errorf("GET users/%s = %d; want 200", e.EmployeeID, code)
			continue
		}
		wantState := "inactive"
		if e.Active == "1" {
			wantState = "active"
		}
		if u.FirstName != e.FirstName || u.LastName != e.LastName || u.JobTitle != e.Title || u.State != wantState {
			t.Errorf("user %s = %+v; want %s %s, %q, %s", e.EmployeeID, u, e.FirstName, e.LastName, e.Title, wantState)
		}
	}
}
