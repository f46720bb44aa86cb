package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// TestIdenticalUploadFastPath uploads the same users.csv three times: the
// repeats are unchanged without being parsed (the report says which batch
// they repeat), while a change of the deletion threshold makes the next
// repeat go through the differ again.
func TestIdenticalUploadFastPath(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{}, Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	users := []byte("user_id,email,first_name,last_name,nickname\nE1,a@acme.test,Ana,A,<&>\nE2,b@acme.test,Bo,B,\nE2,c@acme.test,Cy,C,\n")
	users = []byte(strings.Replace(string(users), "E2,c@", "E3,c@", 1))
	e.upload("users.csv", users)
	first := e.waitBatch("", 10*time.Second)
	if first.Status != state.BatchApplied || first.Effective == "" {
		t.Fatalf("first batch = %s (effective %q)", first.Status, first.Effective)
	}
	report := func(b state.Batch) string {
		raw, err := e.db.BatchReport(e.org, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	e.upload("users.csv", users)
	again := e.waitBatch(first.ID, 10*time.Second)
	if again.Status != state.BatchUnchanged || again.Counts != first.Counts || again.Files[0].Rows != 3 {
		t.Errorf("repeat = %s %+v rows %d; want unchanged %+v, 3 rows", again.Status, again.Counts, again.Files[0].Rows, first.Counts)
	}
	if r := report(again); !strings.Contains(r, "identical (SHA-256) to those of batch "+first.ID) || !strings.Contains(r, `"users": 3`) {
		t.Errorf("repeat's report does not say it repeats %s:\n%s", first.ID, r)
	}
	if evs, _ := e.db.Events(e.org, "", 0); len(evs) != 3 {
		t.Errorf("%d events after the repeat; want the first batch's 3", len(evs))
	}

	// Another deletion threshold: the same files are checked again.
	e.stop()
	e.start(Defaults{DeleteThresholdPercent: 50, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	e.upload("users.csv", users)
	third := e.waitBatch(again.ID, 10*time.Second)
	if third.Status != state.BatchUnchanged || strings.Contains(report(third), "identical (SHA-256)") {
		t.Errorf("repeat under new settings = %s, report:\n%s", third.Status, report(third))
	}
}
