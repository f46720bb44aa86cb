package state

import (
	"errors"
	"testing"
	"time"
)

// TestRecordIgnoredSupersedesNothing: an ignored upload's record leaves a
// held batch held, and a newer batch still supersedes the held one across
// the ignored record.
func TestRecordIgnoredSupersedesNothing(t *testing.T) {
	db := openTestOrg(t, "acme")
	now := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	if _, err := db.CreateBatch(Batch{ID: "B1", Org: "acme", Status: BatchPending, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishBatch(Batch{ID: "B1", Org: "acme", Status: BatchHeld, CreatedAt: now}, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	ign := Batch{ID: "B2", Org: "acme", Status: BatchIgnored, CreatedAt: now, Files: []BatchFile{{Name: "users-1.csv"}}}
	if err := db.RecordIgnored(ign, []byte(`{"status":"ignored"}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordIgnored(ign, []byte(`{}`)); !errors.Is(err, ErrExists) {
		t.Errorf("RecordIgnored twice = %v; want ErrExists", err)
	}
	if b, _ := db.Batch("acme", "B1"); b.Status != BatchHeld {
		t.Fatalf("held batch is %s after an ignored record", b.Status)
	}
	if rep, err := db.BatchReport("acme", "B2"); err != nil || string(rep) != `{"status":"ignored"}` {
		t.Errorf("ignored report = %s, %v", rep, err)
	}
	sup, err := db.CreateBatch(Batch{ID: "B3", Org: "acme", Status: BatchPending, CreatedAt: now})
	if err != nil || len(sup) != 1 || sup[0] != "B1" {
		t.Errorf("CreateBatch after an ignored record superseded %v, %v; want [B1]", sup, err)
	}
	if err := db.RecordIgnored(Batch{ID: "B4", Org: "acme", Status: BatchApplied}, nil); err == nil {
		t.Error("RecordIgnored of an applied batch = nil; want an error")
	}
}
