package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

func link(id, org, token string, created time.Time) state.SetupLink {
	return state.SetupLink{ID: id, Org: org, TokenSHA256: token, CreatedAt: created, ExpiresAt: created.Add(24 * 365 * time.Hour * 100)}
}

func testSetupLinkCreate(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta")
	l1 := link("sl_1", "acme", "t1", t0)
	l2 := link("sl_2", "acme", "t2", t0.Add(time.Minute))
	l3 := link("sl_0", "acme", "t3", t0.Add(time.Minute)) // same time as l2: id order
	lb := link("sl_b", "beta", "tb", t0)
	for _, l := range []state.SetupLink{l1, l2, l3, lb} {
		if err := s.CreateSetupLink(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSetupLink(link("sl_9", "beta", "t1", t0)); !errors.Is(err, state.ErrExists) {
		t.Errorf("CreateSetupLink with a taken token = %v; want ErrExists", err)
	}
	if err := s.CreateSetupLink(link("sl_8", "nope", "t8", t0)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("CreateSetupLink for a missing organization = %v; want ErrNotFound", err)
	}
	got, err := s.SetupLinks("acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]state.SetupLink{l3, l2, l1}, got); diff != "" {
		t.Errorf("SetupLinks(acme) mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.SetupLinks("nope"); err != nil || len(got) != 0 {
		t.Errorf("SetupLinks(nope) = %v, %v; want none", got, err)
	}
	// A link that creates its organization may name one that does not
	// exist yet, and is listed under it.
	lc := link("sl_c", "newco", "tc", t0)
	lc.CreateOrg = true
	if err := s.CreateSetupLink(lc); err != nil {
		t.Fatalf("CreateSetupLink(CreateOrg, newco) = %v", err)
	}
	if got, err := s.SetupLinks("newco"); err != nil || !cmp.Equal([]state.SetupLink{lc}, got) {
		t.Errorf("SetupLinks(newco) = %+v, %v; want %+v", got, err, lc)
	}
	if _, err := s.Org("newco"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Org(newco) before the link's use = %v; want ErrNotFound", err)
	}
}

func testSetupLinkRevoke(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta")
	if err := s.CreateSetupLink(link("sl_1", "acme", "t1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSetupLink("beta", "sl_1"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RevokeSetupLink(beta, sl_1) = %v; want ErrNotFound (another organization's link)", err)
	}
	if _, err := s.RevokeSetupLink("acme", "sl_x"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RevokeSetupLink(acme, sl_x) = %v; want ErrNotFound", err)
	}
	before := time.Now()
	l, err := s.RevokeSetupLink("acme", "sl_1")
	if err != nil {
		t.Fatal(err)
	}
	if l.RevokedAt == nil {
		t.Fatalf("RevokeSetupLink = %+v; want RevokedAt set", l)
	}
	within(t, "RevokedAt", *l.RevokedAt, before, time.Now())
	first := *l.RevokedAt
	l, err = s.RevokeSetupLink("acme", "sl_1")
	if err != nil || l.RevokedAt == nil || !l.RevokedAt.Equal(first) {
		t.Errorf("RevokeSetupLink again = %+v, %v; want the first revocation time %v kept", l, err, first)
	}
	if got, _ := s.SetupLinks("acme"); len(got) != 1 || got[0].RevokedAt == nil || !got[0].RevokedAt.Equal(first) {
		t.Errorf("SetupLinks(acme) = %+v; want sl_1 revoked at %v", got, first)
	}
	if _, _, err := s.UseSetupLink("t1"); !errors.Is(err, state.ErrLinkRevoked) {
		t.Errorf("UseSetupLink(revoked) = %v; want ErrLinkRevoked", err)
	}
	if got, _ := s.SetupLinks("acme"); len(got) != 1 || got[0].Uses != 0 || got[0].LastUsedAt != nil {
		t.Errorf("after a refused use, link = %+v; want no use counted", got)
	}
}

func testSetupLinkUse(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	now := time.Now()
	expired := link("sl_old", "acme", "told", now.Add(-2*time.Hour).Truncate(time.Microsecond))
	expired.ExpiresAt = now.Add(-time.Hour).Truncate(time.Microsecond)
	live := link("sl_live", "acme", "tlive", now.Add(-time.Hour).Truncate(time.Microsecond))
	for _, l := range []state.SetupLink{expired, live} {
		if err := s.CreateSetupLink(l); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.UseSetupLink("nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("UseSetupLink(unknown) = %v; want ErrNotFound", err)
	}
	l, _, err := s.UseSetupLink("told")
	if !errors.Is(err, state.ErrLinkExpired) {
		t.Errorf("UseSetupLink(expired) = %v; want ErrLinkExpired", err)
	}
	if !l.ExpiresAt.Equal(expired.ExpiresAt) {
		t.Errorf("UseSetupLink(expired) link = %+v; want the link, with its expiry", l)
	}
	for i := 1; i <= 2; i++ {
		before := time.Now()
		l, created, err := s.UseSetupLink("tlive")
		if err != nil || created {
			t.Fatalf("UseSetupLink(live) #%d = %v, created %v; want nil, false", i, err, created)
		}
		if l.Uses != i || l.LastUsedAt == nil {
			t.Fatalf("UseSetupLink(live) #%d = %+v; want Uses %d and LastUsedAt", i, l, i)
		}
		within(t, "LastUsedAt", *l.LastUsedAt, before, time.Now())
		stored, _ := s.SetupLinks("acme")
		if diff := cmp.Diff(l, stored[0]); diff != "" {
			t.Errorf("stored link after use #%d mismatch (-returned +stored):\n%s", i, diff)
		}
	}
}

func testSetupLinkCreatesOrg(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "there")
	now := time.Now().Truncate(time.Microsecond)
	mk := link("sl_new", "newco", "tnew", now)
	mk.CreateOrg = true
	old := link("sl_there", "there", "tthere", now)
	old.CreateOrg = true
	for _, l := range []state.SetupLink{mk, old} {
		if err := s.CreateSetupLink(l); err != nil {
			t.Fatal(err)
		}
	}
	l, created, err := s.UseSetupLink("tnew")
	if err != nil || !created || l.OrgCreatedAt == nil || !l.CreateOrg {
		t.Fatalf("UseSetupLink(creating) = %+v, %v, %v; want the organization created", l, created, err)
	}
	o, err := s.Org("newco")
	if err != nil || !o.CreatedAt.Equal(*l.OrgCreatedAt) {
		t.Errorf("Org(newco) = %+v, %v; want created at %v", o, err, *l.OrgCreatedAt)
	}
	l2, created, err := s.UseSetupLink("tnew")
	if err != nil || created || l2.OrgCreatedAt == nil || !l2.OrgCreatedAt.Equal(*l.OrgCreatedAt) || l2.Uses != 2 {
		t.Errorf("UseSetupLink(creating) again = %+v, %v, %v; want used, not created again", l2, created, err)
	}
	// A link for an organization that exists at its first use creates
	// nothing, then or later.
	l, created, err = s.UseSetupLink("tthere")
	if err != nil || created || l.CreateOrg || l.OrgCreatedAt != nil {
		t.Errorf("UseSetupLink(existing org) = %+v, %v, %v; want CreateOrg cleared, nothing created", l, created, err)
	}
	if n, _ := s.OrgCount(); n != 2 {
		t.Errorf("OrgCount() = %d; want 2", n)
	}
}
