package state

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func auditFiles(recs []AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.File
	}
	return out
}

func TestAuditAppendAndPage(t *testing.T) {
	db, path := openTest(t)
	for _, o := range []string{"acme", "globex"} {
		if err := db.CreateOrg(Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	var recs []AuditRecord
	for i := range 7 {
		// The fifth record is stamped earlier than the fourth (two
		// sessions' clocks race): it still sorts after it.
		at := t0.Add(time.Duration(i) * time.Second)
		if i == 4 {
			at = t0
		}
		recs = append(recs, AuditRecord{Org: "acme", Time: at, Event: "upload", File: fmt.Sprintf("f%d", i), Bytes: int64(i), SHA256: "ab", Duration: time.Millisecond})
	}
	recs = append(recs, AuditRecord{Org: "nope", Event: "auth.failure"}, AuditRecord{Org: "", Event: "auth.failure"},
		AuditRecord{Org: "globex", Time: t0, Event: "session.start", KeyFP: "SHA256:x"})
	if err := db.AppendAudit(recs[:3], 0); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(recs[3:], 0); err != nil {
		t.Fatal(err)
	}

	all, err := db.AuditRecords("acme", "", 0, OldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6"}
	if got := auditFiles(all); !slices.Equal(got, want) {
		t.Fatalf("AuditRecords(acme, oldest first) files = %q; want %q", got, want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Errorf("IDs not increasing: %q then %q", all[i-1].ID, all[i].ID)
		}
	}
	wantRec := recs[2]
	wantRec.ID = all[2].ID
	if diff := cmp.Diff(wantRec, all[2]); diff != "" {
		t.Errorf("record 2 (-want +got):\n%s", diff)
	}

	// Paging both ways with the last ID of each page as the cursor.
	for _, order := range []AuditOrder{OldestFirst, NewestFirst} {
		var got []string
		after := ""
		for range 10 {
			page, err := db.AuditRecords("acme", after, 3, order)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, auditFiles(page)...)
			after = page[len(page)-1].ID
		}
		w := slices.Clone(want)
		if order == NewestFirst {
			slices.Reverse(w)
		}
		if !slices.Equal(got, w) {
			t.Errorf("pages in order %d = %q; want %q", order, got, w)
		}
	}
	// A cursor that is not a stored ID starts at the next one beyond it.
	if page, _ := db.AuditRecords("acme", all[2].ID+"0", 2, NewestFirst); !slices.Equal(auditFiles(page), []string{"f2", "f1"}) {
		t.Errorf("newest first after a non-ID cursor = %q; want f2 f1", auditFiles(page))
	}

	g, err := db.AuditRecords("globex", "", 0, NewestFirst)
	if err != nil || len(g) != 1 || g[0].KeyFP != "SHA256:x" || g[0].Org != "globex" {
		t.Errorf("AuditRecords(globex) = %+v, %v; want its one session", g, err)
	}
	if _, err := db.AuditRecords("nope", "", 0, NewestFirst); !errors.Is(err, ErrNotFound) {
		t.Errorf("AuditRecords(nope) = %v; want ErrNotFound", err)
	}

	// The trail survives a reopen, and appending continues after it.
	db.Close()
	db, err = Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AppendAudit([]AuditRecord{{Org: "acme", Time: t0, Event: "remove", File: "f7"}}, 0); err != nil {
		t.Fatal(err)
	}
	page, err := db.AuditRecords("acme", "", 1, NewestFirst)
	if err != nil || len(page) != 1 || page[0].File != "f7" || page[0].ID <= all[6].ID {
		t.Errorf("newest after reopen = %+v, %v; want f7 after %s", page, err, all[6].ID)
	}
}

func TestAuditRetention(t *testing.T) {
	db, _ := openTest(t)
	db.CreateOrg(Org{Name: "acme"})
	db.CreateOrg(Org{Name: "globex"})
	t0 := time.Now()
	n := 0
	batch := func(org string, k int) []AuditRecord {
		var out []AuditRecord
		for range k {
			out = append(out, AuditRecord{Org: org, Time: t0.Add(time.Duration(n) * time.Millisecond), Event: "upload", File: fmt.Sprint(n)})
			n++
		}
		return out
	}
	if err := db.AppendAudit(batch("globex", 3), 5); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{4, 3, 9} {
		if err := db.AppendAudit(batch("acme", k), 5); err != nil {
			t.Fatal(err)
		}
		got, _ := db.AuditRecords("acme", "", 0, OldestFirst)
		if len(got) > 5 {
			t.Fatalf("after appending %d: %d records kept; want at most 5", k, len(got))
		}
	}
	got, _ := db.AuditRecords("acme", "", 0, OldestFirst)
	if want := []string{"14", "15", "16", "17", "18"}; !slices.Equal(auditFiles(got), want) {
		t.Errorf("kept = %q; want the newest five %q", auditFiles(got), want)
	}
	// The bound is per organization.
	if g, _ := db.AuditRecords("globex", "", 0, OldestFirst); len(g) != 3 {
		t.Errorf("globex kept %d records; want its 3", len(g))
	}
	// The default bound is AuditKeep.
	big := batch("acme", AuditKeep+10)
	if err := db.AppendAudit(big, 0); err != nil {
		t.Fatal(err)
	}
	got, _ = db.AuditRecords("acme", "", 0, OldestFirst)
	if len(got) != AuditKeep || got[0].File != big[10].File {
		t.Errorf("kept %d records from %q; want %d from %q", len(got), got[0].File, AuditKeep, big[10].File)
	}
}
