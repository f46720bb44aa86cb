package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rosterd.db")
	db, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// openTestOrg is openTest with the organization org created.
func openTestOrg(t testing.TB, org string) *DB {
	t.Helper()
	db, _ := openTest(t)
	if err := db.CreateOrg(Org{Name: org}); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestOrgsAndKeysSurviveReopen(t *testing.T) {
	db, path := openTest(t)
	pct := 30.0
	if err := db.CreateOrg(Org{Name: "acme", Settings: Settings{DeleteThresholdPercent: &pct}}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(Org{Name: "acme"}); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateOrg(acme) again = %v; want ErrExists", err)
	}
	k := Key{Fingerprint: "SHA256:abc", Type: "ssh-ed25519", Comment: "hr@acme", PublicKey: "ssh-ed25519 AAAA"}
	if err := db.AddKey("acme", k); err != nil {
		t.Fatal(err)
	}
	if err := db.AddKey("acme", k); !errors.Is(err, ErrExists) {
		t.Fatalf("AddKey twice = %v; want ErrExists", err)
	}
	if err := db.AddKey("nope", k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddKey(nope) = %v; want ErrNotFound", err)
	}
	db.Close()

	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o, err := db.Org("acme")
	if err != nil {
		t.Fatal(err)
	}
	if o.Settings.DeleteThresholdPercent == nil || *o.Settings.DeleteThresholdPercent != 30 || o.CreatedAt.IsZero() {
		t.Errorf("Org(acme) = %+v; want threshold 30 and a creation time", o)
	}
	keys, err := db.Keys("acme")
	if err != nil {
		t.Fatal(err)
	}
	k.CreatedAt = keys[0].CreatedAt
	if diff := cmp.Diff([]Key{k}, keys); diff != "" {
		t.Errorf("Keys(acme) mismatch (-want +got):\n%s", diff)
	}
	if ok, _ := db.HasKey("acme", "SHA256:abc"); !ok {
		t.Error("HasKey(acme, abc) = false; want true")
	}
	if ok, _ := db.HasKey("acme", "SHA256:other"); ok {
		t.Error("HasKey(acme, other) = true; want false")
	}
}

func TestDeleteOrgRemovesKeysAndAudit(t *testing.T) {
	db, _ := openTest(t)
	for _, n := range []string{"a", "b", "c"} {
		if err := db.CreateOrg(Org{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddKey("b", Key{Fingerprint: "SHA256:x"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit([]AuditRecord{{Org: "b", Event: "upload", File: "users.csv"}}, 0); err != nil {
		t.Fatal(err)
	}
	if recs, _ := db.AuditRecords("b", "", 0, OldestFirst); len(recs) != 1 {
		t.Fatalf("AuditRecords(b) = %v; want the one record", recs)
	}
	if err := db.DeleteOrg("b"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteOrg("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteOrg(b) twice = %v; want ErrNotFound", err)
	}
	if ok, _ := db.HasKey("b", "SHA256:x"); ok {
		t.Error("key of a deleted organization still authorizes")
	}
	// Recreating the name starts clean.
	if err := db.CreateOrg(Org{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := db.Keys("b"); len(keys) != 0 {
		t.Errorf("Keys(b) after recreate = %v; want none", keys)
	}
	if recs, _ := db.AuditRecords("b", "", 0, OldestFirst); len(recs) != 0 {
		t.Errorf("AuditRecords(b) after recreate = %v; want the old trail gone", recs)
	}
	orgs, err := db.Orgs("a", 1)
	if err != nil || len(orgs) != 1 || orgs[0].Name != "b" {
		t.Errorf("Orgs(after a, 1) = %v, %v; want [b]", orgs, err)
	}
}

func TestUpdateOrgKeepsName(t *testing.T) {
	db := openTestOrg(t, "acme")
	o, err := db.UpdateOrg("acme", func(o *Org) error {
		o.Name = "evil"
		o.Settings.InactiveUsers = "delete"
		return nil
	})
	if err != nil || o.Name != "acme" || o.Settings.InactiveUsers != "delete" {
		t.Fatalf("UpdateOrg = %+v, %v; want acme with delete policy", o, err)
	}
	if _, err := db.Org("evil"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Org(evil) = %v; want ErrNotFound", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	db, path := openTest(t)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, nil); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open(newer) = %v; want ErrNewerSchema", err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	_, path := openTest(t)
	db2, err := Open(path, nil)
	if err == nil {
		db2.Close()
		t.Fatal("second Open of a held database succeeded; want a lock error")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v; want ErrLocked", err)
	}
}

func TestOrgCountAndOpenBatches(t *testing.T) {
	db, _ := openTest(t)
	for _, org := range []string{"acme", "globex", "initech"} {
		if err := db.CreateOrg(Org{Name: org}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.OrgCount(); n != 3 || err != nil {
		t.Errorf("OrgCount() = %d, %v; want 3", n, err)
	}
	// A new batch supersedes a held one, so the held one comes last.
	for i, st := range []string{BatchApplied, BatchPending, BatchProcessing, BatchHeld} {
		b := Batch{ID: fmt.Sprintf("B%d", i), Org: "acme", Status: st}
		if _, err := db.CreateBatch(b); err != nil {
			t.Fatal(err)
		}
	}
	open, err := db.OpenBatches()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range open {
		got = append(got, b.ID+":"+b.Status)
	}
	if want := []string{"B1:pending", "B2:processing", "B3:held"}; !cmp.Equal(got, want) {
		t.Errorf("OpenBatches() = %v; want %v", got, want)
	}
	unfinished, _ := db.UnfinishedBatches()
	if len(unfinished) != 2 {
		t.Errorf("UnfinishedBatches() = %v; want the pending and the processing one", unfinished)
	}
}
