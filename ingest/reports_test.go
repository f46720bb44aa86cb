package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// usersCSV returns a users.csv of users U0001..Un, those in inactive
// with status inactive.
func usersCSV(from, to int, inactive map[int]bool) []byte {
	var b bytes.Buffer
	b.WriteString("user_id,email,first_name,last_name,status\n")
	for i := from; i <= to; i++ {
		st := "active"
		if inactive[i] {
			st = "inactive"
		}
		fmt.Fprintf(&b, "U%04d,u%04d@acme.test,First%d,Last%d,%s\n", i, i, i, i, st)
	}
	return b.Bytes()
}

// reportFile waits for a file of the organization's reports/ folder.
func (e *env) reportFile(name string) []byte {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(e.orgDir, "reports", name))
		if err == nil {
			return data
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("report %s: %v", name, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var batchIDs = regexp.MustCompile(`[0-9A-Z]{26}|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC|[0-9a-f]{64}`)

// TestHeldReportListsUsers: SPEC §5, issue 12 case 5. A held batch's
// report lists who would be deleted or deactivated: the first 100 in the
// text, all in the JSON report files; the stored report (the API) keeps
// them all up to report.MaxRemovedListed.
func TestHeldReportListsUsers(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{}, Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	e.upload("users.csv", usersCSV(1, 140, nil))
	first := e.waitBatch("", 10*time.Second)
	if first.Status != state.BatchApplied {
		t.Fatalf("first upload: %s", first.Status)
	}
	// 120 deleted, 2 deactivated, 1 already inactive stays inactive.
	e.upload("users.csv", usersCSV(1, 20, map[int]bool{3: true, 7: true}))
	held := e.waitBatch(first.ID, 10*time.Second)
	if held.Status != state.BatchHeld {
		t.Fatalf("second upload: %s; want held", held.Status)
	}
	txt := e.reportFile(reportBase(held) + ".txt")
	if !bytes.Contains(txt, []byte("(the first 100 of 122; the JSON report lists them all)")) {
		t.Errorf("text report does not say it lists 100 of 122:\n%s", txt)
	}
	if n := bytes.Count(txt, []byte("@acme.test")); n != 100 {
		t.Errorf("text report lists %d users; want 100", n)
	}
	golden(t, "testdata/held-report.txt", batchIDs.ReplaceAll(txt, []byte("X")))

	var rep report.Report
	if err := json.Unmarshal(e.reportFile(reportBase(held)+".json"), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.RemovedUsersTotal != 122 || len(rep.RemovedUsers) != 122 {
		t.Fatalf("JSON report lists %d of %d removed users; want 122 of 122", len(rep.RemovedUsers), rep.RemovedUsersTotal)
	}
	want := map[string]string{"U0003": report.Deactivated, "U0007": report.Deactivated, "U0021": report.Deleted, "U0140": report.Deleted}
	for _, u := range rep.RemovedUsers {
		if c, ok := want[u.ID]; ok {
			if u.Change != c || u.Email != strings.ToLower(u.ID)+"@acme.test" || u.FirstName == "" || u.LastName == "" {
				t.Errorf("removed user %+v; want change %s with email and names", u, c)
			}
			delete(want, u.ID)
		}
		if u.ID <= "U0020" && u.ID != "U0003" && u.ID != "U0007" {
			t.Errorf("user %s is listed but stays", u.ID)
		}
	}
	if len(want) > 0 {
		t.Errorf("not listed: %v", want)
	}
	raw, err := e.db.BatchReport(e.org, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	var stored report.Report
	if err := json.Unmarshal(raw, &stored); err != nil || len(stored.RemovedUsers) != 122 {
		t.Errorf("stored report lists %d removed users (%v); want 122", len(stored.RemovedUsers), err)
	}
}

// TestHeldReportListCapped: at more than report.MaxRemovedListed removed
// users, the stored report keeps the first ones and the total, and the
// report files, streamed, have them all.
func TestHeldReportListCapped(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{}, Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	e.upload("users.csv", usersCSV(1, 1300, nil))
	first := e.waitBatch("", 20*time.Second)
	e.upload("users.csv", usersCSV(1, 100, nil))
	held := e.waitBatch(first.ID, 20*time.Second)
	if held.Status != state.BatchHeld {
		t.Fatalf("second upload: %s; want held", held.Status)
	}
	raw, err := e.db.BatchReport(e.org, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	var stored report.Report
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	if stored.RemovedUsersTotal != 1200 || len(stored.RemovedUsers) != report.MaxRemovedListed {
		t.Errorf("stored report: %d of %d; want %d of 1200", len(stored.RemovedUsers), stored.RemovedUsersTotal, report.MaxRemovedListed)
	}
	for _, path := range []string{reportBase(held) + ".json", "../../../archive/acme/" + held.ID + "/report.json"} {
		var rep report.Report
		err := json.Unmarshal(e.reportFile(path), &rep)
		if err != nil || len(rep.RemovedUsers) != 1200 || rep.RemovedUsers[1199].ID != "U1300" {
			t.Errorf("%s: %d removed users (%v); want all 1200", path, len(rep.RemovedUsers), err)
		}
	}
}

// TestIgnoredUploadReport: SPEC §5, issue 12 case 4. A completed .csv
// upload that no name or pattern processes gets a short ignored report
// in reports/, once per name per day, and a batch record the API lists;
// it leaves latest.* and the snapshot alone and supersedes no held batch.
func TestIgnoredUploadReport(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{UsersPatterns: []string{"users_*.csv"}},
		Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	e.upload("users.csv", usersCSV(1, 40, nil))
	first := e.waitBatch("", 10*time.Second)
	e.upload("users.csv", usersCSV(1, 5, nil))
	held := e.waitBatch(first.ID, 10*time.Second)
	if held.Status != state.BatchHeld {
		t.Fatalf("second upload: %s; want held", held.Status)
	}
	checkReport(t, e, held) // waits for latest.* to be the held batch's
	latest := e.reportFile("latest.json")

	e.upload("users-2026-12-03.csv", usersCSV(1, 3, nil))
	ign := e.waitBatch(held.ID, 10*time.Second)
	if ign.Status != state.BatchIgnored || len(ign.Files) != 1 || ign.Files[0].Name != "users-2026-12-03.csv" {
		t.Fatalf("ignored upload recorded as %+v", ign)
	}
	txt := string(e.reportFile(reportBase(ign) + ".txt"))
	for _, want := range []string{
		"IGNORED:", "users-2026-12-03.csv", "users.csv, user_groups.csv, groups.csv, users_*.csv (users)",
		"ask the operator of this service to add the pattern users-*.csv for users files",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("ignored report lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "PATCH") || strings.Contains(txt, "Counts:") {
		t.Errorf("ignored report holds the operator's notes or counts:\n%s", txt)
	}
	raw, _ := e.db.BatchReport(e.org, ign.ID)
	if !bytes.Contains(raw, []byte(`"users_patterns\": [\"users-*.csv\"]`)) {
		t.Errorf("stored report lacks the operator's PATCH:\n%s", raw)
	}
	if got := e.reportFile("latest.json"); !bytes.Equal(got, latest) {
		t.Errorf("latest.json changed for an ignored upload:\n%s\n---\n%s", latest, got)
	}
	if b, _ := e.db.Batch(e.org, held.ID); b.Status != state.BatchHeld {
		t.Errorf("held batch is %s after an ignored upload; want still held", b.Status)
	}

	// Again the same day, in another case: no second notice. Another
	// name: its own notice. Not .csv: nothing.
	e.upload("USERS-2026-12-03.CSV", usersCSV(1, 3, nil))
	e.upload("notes.txt", []byte("hello"))
	e.p.Notify(e.org, "renamed-away.csv") // a temporary name, gone by now
	e.upload("export.csv", usersCSV(1, 3, nil))
	next := e.waitBatch(ign.ID, 10*time.Second)
	if next.Status != state.BatchIgnored || next.Files[0].Name != "export.csv" {
		t.Fatalf("next record %+v; want the notice of export.csv", next)
	}
	all, _ := e.db.Batches(e.org, "", 0)
	n := 0
	for _, b := range all {
		if b.Status == state.BatchIgnored {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d ignored records; want 2 (users-2026-12-03.csv once, export.csv)", n)
	}

	// A real upload still supersedes the held batch.
	e.upload("users_20261204.csv", usersCSV(1, 40, nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := e.db.Batch(e.org, held.ID); b.Status == state.BatchSuperseded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held batch was not superseded by a newer real upload")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSparseUploadArchive: issue 12 case 3. One byte written at 256 MiB
// makes a file of 256 MiB holding 4 KiB: its archive copy keeps the hole
// (it costs what the upload cost), and the batch is rejected with a clear
// issue.
func TestSparseUploadArchive(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{}, Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	tmp := filepath.Join(e.orgDir, ".in.users.csv")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\n"), 256<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(e.orgDir, "users.csv")); err != nil {
		t.Fatal(err)
	}
	e.p.Notify(e.org, "users.csv")
	b := e.waitBatch("", 30*time.Second)
	if b.Status != state.BatchRejected {
		t.Errorf("sparse upload: %s; want rejected", b.Status)
	}
	fi, err := os.Stat(filepath.Join(e.root, "archive", e.org, b.ID, "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 256<<20+1 {
		t.Errorf("archive copy is %d bytes long; want the upload's %d", fi.Size(), 256<<20+1)
	}
	if n := allocated(fi); n > 1<<20 {
		t.Errorf("archive copy takes %d bytes on disk; want what the upload took (a few KiB)", n)
	}
	h := sha256.New()
	h.Write(make([]byte, 256<<20))
	h.Write([]byte("\n"))
	if want := hex.EncodeToString(h.Sum(nil)); b.Files[0].SHA256 != want {
		t.Errorf("recorded SHA-256 %s; want the content's, holes as zeros, %s", b.Files[0].SHA256, want)
	}
	txt := string(e.reportFile(reportBase(b) + ".txt"))
	if !strings.Contains(txt, "256 MiB of this file were never written (the first gap starts at byte 0)") {
		t.Errorf("report does not explain the hole:\n%s", txt)
	}
}
