package state

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestSetupLinkUse(t *testing.T) {
	db := openTestOrg(t, "acme")
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }
	link := SetupLink{ID: "sl_1", Org: "acme", TokenSHA256: "aa", ExpiresAt: now.Add(time.Hour)}
	if err := db.CreateSetupLink(link); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSetupLink(link); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateSetupLink(same hash) = %v; want ErrExists", err)
	}
	if err := db.CreateSetupLink(SetupLink{ID: "sl_2", Org: "nope", TokenSHA256: "bb", ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CreateSetupLink(unknown org) = %v; want ErrNotFound", err)
	}
	l, created, err := db.UseSetupLink("aa")
	if err != nil || created || l.Uses != 1 || l.LastUsedAt == nil || !l.LastUsedAt.Equal(now) {
		t.Fatalf("UseSetupLink = %+v, %v, %v; want one use now, nothing created", l, created, err)
	}
	if _, _, err := db.UseSetupLink("cc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UseSetupLink(unknown) = %v; want ErrNotFound", err)
	}

	now = now.Add(time.Hour)
	if l, _, err := db.UseSetupLink("aa"); !errors.Is(err, ErrLinkExpired) || l.ID != "sl_1" {
		t.Fatalf("UseSetupLink(at expiry) = %+v, %v; want the link and ErrLinkExpired", l, err)
	}
	links, err := db.SetupLinks("acme")
	if err != nil || len(links) != 1 || links[0].Uses != 1 {
		t.Fatalf("SetupLinks after a refused use = %+v, %v; want the one use counted before", links, err)
	}
}

func TestSetupLinkRevoke(t *testing.T) {
	db := openTestOrg(t, "acme")
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }
	for i, id := range []string{"sl_old", "sl_new"} {
		db.now = func() time.Time { return now.Add(time.Duration(i) * time.Minute) }
		if err := db.CreateSetupLink(SetupLink{ID: id, Org: "acme", TokenSHA256: id, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RevokeSetupLink("globex", "sl_old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RevokeSetupLink(another org) = %v; want ErrNotFound", err)
	}
	l, err := db.RevokeSetupLink("acme", "sl_old")
	if err != nil || l.RevokedAt == nil {
		t.Fatalf("RevokeSetupLink = %+v, %v", l, err)
	}
	if _, _, err := db.UseSetupLink("sl_old"); !errors.Is(err, ErrLinkRevoked) {
		t.Fatalf("UseSetupLink(revoked) = %v; want ErrLinkRevoked", err)
	}
	if _, _, err := db.UseSetupLink("sl_new"); err != nil {
		t.Fatalf("UseSetupLink(the other link) = %v", err)
	}
	links, _ := db.SetupLinks("acme")
	if len(links) != 2 || links[0].ID != "sl_new" || links[1].ID != "sl_old" {
		t.Fatalf("SetupLinks = %+v; want sl_new then sl_old", links)
	}
}

func TestSetupLinkCreatesOrgOnce(t *testing.T) {
	db, _ := openTest(t)
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }
	if err := db.CreateSetupLink(SetupLink{ID: "sl_1", Org: "acme", TokenSHA256: "aa", CreateOrg: true, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Org("acme"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Org before the first use = %v; want ErrNotFound", err)
	}
	if _, created, err := db.UseSetupLink("aa"); err != nil || !created {
		t.Fatalf("first UseSetupLink = %v, %v; want the organization created", created, err)
	}
	if _, err := db.Org("acme"); err != nil {
		t.Fatalf("Org after the first use: %v", err)
	}
	if _, created, err := db.UseSetupLink("aa"); err != nil || created {
		t.Fatalf("second UseSetupLink = %v, %v; want a use, nothing created", created, err)
	}
	// Removing the organization removes its links: a later organization
	// of the same name is not opened by them.
	if err := db.DeleteOrg("acme"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.UseSetupLink("aa"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UseSetupLink after the organization was removed = %v; want ErrNotFound", err)
	}
}

func TestSetupLinkOrgGone(t *testing.T) {
	db := openTestOrg(t, "acme")
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }
	if err := db.CreateSetupLink(SetupLink{ID: "sl_1", Org: "acme", TokenSHA256: "aa", CreateOrg: true, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The organization existed: the link creates nothing, and after the
	// organization's removal (bypassing DeleteOrg's cleanup, as another
	// writer might) it does not bring it back.
	if _, created, err := db.UseSetupLink("aa"); err != nil || created {
		t.Fatalf("UseSetupLink = %v, %v", created, err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOrgs).Delete([]byte("acme")) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.UseSetupLink("aa"); !errors.Is(err, ErrOrgGone) {
		t.Fatalf("UseSetupLink(org removed) = %v; want ErrOrgGone", err)
	}
}
