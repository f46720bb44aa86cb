package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// TestE2EDerivedGroups uploads over OpenSSH sftp to the real daemon, two
// days running: to one organization, WorkOS-format users.csv and
// user_groups.csv made by hand; to another, an HR export as it comes (its
// own column names, read through a mapping, with departments, offices and
// a ;-separated groups column instead of a user_groups.csv), gzipped, the
// organization deriving its groups from those columns (set with rosterd
// org set). Both get the same events each day; the move of a person to
// another department is one user_removed and one user_added. Then a
// user_groups.csv alone is refused by the deriving organization.
func TestE2EDerivedGroups(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	gzip := sftptest.LookPath(t, "gzip")
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "1s"}})
	local := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(local, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put := func(cfg string, names ...string) {
		t.Helper()
		var batch strings.Builder
		for _, n := range names {
			fmt.Fprintf(&batch, "put %s/%s\n", local, n)
		}
		if out, err := sftptest.SFTP(t, cfg, batch.String()); err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
	}

	handCfg := sftpOrg(t, d, "handmade")
	hrCfg := sftpOrg(t, d, "hr")
	cols := map[string]string{
		"Employee ID": "user_id", "Work Email": "email", "Legal First Name": "first_name", "Last Name": "last_name",
		"Department": "department_name", "Office": "work_address_locality", "Employment Status": "status", "Groups": "custom:groups",
	}
	args := []string{"org", "set", "hr", `status_values={"Terminated": "inactive", "On Leave": "active"}`,
		`groups_from_columns=[{"column": "department_name", "template": "Department: {value}"}, "work_address_locality", {"column": "groups", "separator": ";"}]`}
	for src, to := range cols {
		args = append(args, "columns."+src+"="+to)
	}
	if out, code := d.CLI("", args...); code != 0 {
		t.Fatalf("org set hr: %d\n%s", code, out)
	}
	if out, code := d.CLI("", "org", "set", "hr", `groups_from_columns=[{"column": "department_name", "template": "Staff"}]`); code == 0 ||
		!strings.Contains(out, `the template "Staff" of department_name has no {value}`) {
		t.Errorf("org set a template without {value}: %d\n%s", code, out)
	}
	if out, code := d.CLI("", "org", "show", "hr"); code != 0 || !strings.Contains(out, `{"column":"department_name","template":"Department: {value}"},{"column":"work_address_locality"}`) {
		t.Errorf("org show hr: %d\n%s", code, out)
	}

	days := []struct {
		hr, users, members string
	}{
		{
			hr: "Employee ID,Legal First Name,Last Name,Work Email,Department,Office,Employment Status,Groups\n" +
				"E1,Ana,Álvarez,ana@acme.test,Engineering,Lyon,Active,VPN; Admins\n" +
				"E2,Bo,Chén,bo@acme.test,Design,Lyon,On Leave,\n" +
				"E3,Cy,Ng,cy@acme.test,Engineering,,Active,VPN\n",
			users: "user_id,email,first_name,last_name,department_name,work_address_locality,status,groups\n" +
				"E1,ana@acme.test,Ana,Álvarez,Engineering,Lyon,active,VPN; Admins\n" +
				"E2,bo@acme.test,Bo,Chén,Design,Lyon,active,\n" +
				"E3,cy@acme.test,Cy,Ng,Engineering,,active,VPN\n",
			members: "group_name,user_id\nDepartment: Engineering,E1\nLyon,E1\nVPN,E1\nAdmins,E1\n" +
				"Department: Design,E2\nLyon,E2\nDepartment: Engineering,E3\nVPN,E3\n",
		},
		{ // Cy moves to Design and to Oslo; Bo leaves.
			hr: "Employee ID,Legal First Name,Last Name,Work Email,Department,Office,Employment Status,Groups\n" +
				"E1,Ana,Álvarez,ana@acme.test,Engineering,Lyon,Active,VPN; Admins\n" +
				"E2,Bo,Chén,bo@acme.test,Design,Lyon,Terminated,\n" +
				"E3,Cy,Ng,cy@acme.test,Design,Oslo,Active,VPN\n",
			users: "user_id,email,first_name,last_name,department_name,work_address_locality,status,groups\n" +
				"E1,ana@acme.test,Ana,Álvarez,Engineering,Lyon,active,VPN; Admins\n" +
				"E2,bo@acme.test,Bo,Chén,Design,Lyon,inactive,\n" +
				"E3,cy@acme.test,Cy,Ng,Design,Oslo,active,VPN\n",
			members: "group_name,user_id\nDepartment: Engineering,E1\nLyon,E1\nVPN,E1\nAdmins,E1\n" +
				"Department: Design,E2\nLyon,E2\nDepartment: Design,E3\nOslo,E3\nVPN,E3\n",
		},
	}
	var prevHand, prevHR string
	for i, day := range days {
		write("users.csv", day.users)
		write("user_groups.csv", day.members)
		write("hr.csv", day.hr)
		gz, err := exec.Command(gzip, "-c", filepath.Join(local, "hr.csv")).Output()
		if err != nil {
			t.Fatal(err)
		}
		write("users.csv.gz", string(gz))
		put(handCfg, "users.csv", "user_groups.csv")
		put(hrCfg, "users.csv.gz")
		hand, hr := d.waitFinal("handmade", prevHand), d.waitFinal("hr", prevHR)
		prevHand, prevHR = hand.ID, hr.ID
		if hand.Status != "applied" || hr.Status != "applied" {
			t.Fatalf("day %d: hand-made %s, hr %s; report:\n%s", i+1, hand.Status, hr.Status, d.batch("hr", hr.ID).Report)
		}
		want := orgEvents(t, d, "handmade")
		if diff := cmp.Diff(want, orgEvents(t, d, "hr")); diff != "" {
			t.Errorf("day %d: events differ (-hand-made +hr):\n%s", i+1, diff)
		}
		if hand.Changes != hr.Changes {
			t.Errorf("day %d: changes %+v (hand-made), %+v (hr)", i+1, hand.Changes, hr.Changes)
		}
		rep := d.batch("hr", hr.ID).Report
		for _, w := range []string{`"groups_from_columns"`, `"column": "department_name"`, `"template": "Department: {value}"`, `"decoded": "gzip-compressed"`} {
			if !bytes.Contains(rep, []byte(w)) {
				t.Errorf("day %d: the report does not hold %s:\n%s", i+1, w, rep)
			}
		}
		if i == 1 {
			moved := 0
			for _, e := range orgEvents(t, d, "hr") {
				e = strings.Join(strings.Fields(e), "")
				if strings.Contains(e, `"id":"E3"`) && (strings.HasPrefix(e, "dsync.group.user_removed") && strings.Contains(e, `"name":"Department:Engineering"`) ||
					strings.HasPrefix(e, "dsync.group.user_added") && strings.Contains(e, `"name":"Department:Design"`)) {
					moved++
				}
			}
			if moved != 2 || hr.Changes.MembershipsAdded != 2 || hr.Changes.MembershipsRemoved != 1 {
				t.Errorf("day 2: %d events of Cy's move, changes %+v; want a removal and an addition for the department, and an addition for the office", moved, hr.Changes)
			}
		}
	}

	// The text report in the organization's folder names the columns.
	out, err := sftptest.SFTP(t, hrCfg, "get /reports/latest.txt "+local+"/latest.txt\n")
	if err != nil {
		t.Fatalf("sftp get: %v\n%s", err, out)
	}
	txt, _ := os.ReadFile(filepath.Join(local, "latest.txt"))
	if !strings.Contains(string(txt), `department_name, named "Department: {value}": 3 memberships`) {
		t.Errorf("latest.txt does not count the derived memberships:\n%s", txt)
	}

	put(hrCfg, "user_groups.csv")
	b := d.waitFinal("hr", prevHR)
	if b.Status != "rejected" || !bytes.Contains(d.batch("hr", b.ID).Report, []byte(`"code": "users_file_required"`)) {
		t.Errorf("user_groups.csv alone: %s; want rejected with users_file_required:\n%s", b.Status, d.batch("hr", b.ID).Report)
	}
}
