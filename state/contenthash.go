package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"time"
)

// ContentReader is what ContentHash reads: reads that every store has
// (state.DB and the PostgreSQL store), with state.DB's semantics.
type ContentReader interface {
	Org(name string) (Org, error)
	Keys(org string) ([]Key, error)
	SetupLinks(org string) ([]SetupLink, error)
	AuditRecords(org, after string, limit int, order AuditOrder) ([]AuditRecord, error)
	Batches(org, after string, limit int) ([]Batch, error)
	BatchReport(org, id string) (json.RawMessage, error)
	Completions(org string) (Completions, error)
	Users(org, stateFilter, after string, limit int) ([]json.RawMessage, error)
	Groups(org, after string, limit int) ([]json.RawMessage, error)
	GroupUsers(org, groupID, after string, limit int) ([]json.RawMessage, error)
	SnapshotCounts(org string) (SnapshotCounts, error)
	ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error
	Endpoints() ([]EndpointState, error)
	Cursor(id, org string) (Cursor, error)
	FailedDeliveries(id, after string, limit int) ([]FailedDelivery, error)
}

// AreaHash is the content of one area of an organization: how many
// records it holds and the SHA-256 of them in a canonical form.
type AreaHash struct {
	Count int    `json:"count"`
	Hash  string `json:"sha256"`
}

// ContentAreas are the areas ContentHash covers, in its order.
var ContentAreas = []string{"organization", "keys", "setup_links", "audit", "batches", "completions",
	"users", "groups", "memberships", "events", "delivery"}

// ContentHash digests what store r holds for org, area by area, in a form
// that does not depend on the store: the same content gives the same
// hashes from state.DB and from the PostgreSQL store (rosterd store copy
// compares them). Times count to the microsecond, which both stores keep;
// JSON that a store keeps as given (batch records, reports, directory
// objects, events) counts byte for byte. The organization's events and
// delivery state count even when the organization itself is gone.
func ContentHash(r ContentReader, org string) (map[string]AreaHash, error) {
	out := map[string]AreaHash{}
	fail := func(area string, err error) (map[string]AreaHash, error) {
		return nil, fmt.Errorf("content of %s, %s: %w", org, area, err)
	}

	a := newArea()
	o, err := r.Org(org)
	exists := err == nil
	switch {
	case exists:
		o.CreatedAt = microsecond(o.CreatedAt)
		a.add(o)
	case !errors.Is(err, ErrNotFound):
		return fail("organization", err)
	}
	out["organization"] = a.sum()

	a = newArea()
	if exists {
		keys, err := r.Keys(org)
		if err != nil {
			return fail("keys", err)
		}
		for _, k := range keys {
			k.CreatedAt = microsecond(k.CreatedAt)
			a.add(k)
		}
	}
	out["keys"] = a.sum()

	a = newArea()
	links, err := r.SetupLinks(org)
	if err != nil {
		return fail("setup_links", err)
	}
	slices.SortFunc(links, func(x, y SetupLink) int { return strings.Compare(x.TokenSHA256, y.TokenSHA256) })
	for _, l := range links {
		l.CreatedAt, l.ExpiresAt = microsecond(l.CreatedAt), microsecond(l.ExpiresAt)
		l.OrgCreatedAt, l.RevokedAt, l.LastUsedAt = microsecondPtr(l.OrgCreatedAt), microsecondPtr(l.RevokedAt), microsecondPtr(l.LastUsedAt)
		a.add(l)
	}
	out["setup_links"] = a.sum()

	a = newArea()
	if exists {
		recs, err := r.AuditRecords(org, "", 0, OldestFirst)
		if err != nil {
			return fail("audit", err)
		}
		for _, rec := range recs {
			rec.Time = microsecond(rec.Time)
			a.add(rec.ID, rec)
		}
	}
	out["audit"] = a.sum()

	a = newArea()
	if exists {
		bs, err := r.Batches(org, "", 0)
		if err != nil {
			return fail("batches", err)
		}
		for _, b := range bs {
			rep, err := r.BatchReport(org, b.ID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fail("batches", err)
			}
			a.add(b, []byte(rep))
		}
	}
	out["batches"] = a.sum()

	a = newArea()
	c, err := r.Completions(org)
	if err != nil {
		return fail("completions", err)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Newest)) {
		a.add("newest", k, c.Newest[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.Files)) {
		a.add("file", k, c.Files[k])
	}
	out["completions"] = a.sum()

	if exists {
		if err := hashSnapshot(r, org, out); err != nil {
			return fail("snapshot", err)
		}
	} else {
		for _, area := range []string{"users", "groups", "memberships"} {
			out[area] = newArea().sum()
		}
	}

	a = newArea()
	err = r.ForEachEventJSON(org, "", 0, func(id string, raw []byte) error {
		a.add(id, raw)
		return nil
	})
	if err != nil {
		return fail("events", err)
	}
	out["events"] = a.sum()

	a = newArea()
	eps, err := r.Endpoints()
	if err != nil {
		return fail("delivery", err)
	}
	slices.SortFunc(eps, func(x, y EndpointState) int { return strings.Compare(x.ID, y.ID) })
	for _, ep := range eps {
		cur, err := r.Cursor(ep.ID, org)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fail("delivery", err)
		}
		if cur.Retry != nil {
			cur.Retry.NextAt = microsecond(cur.Retry.NextAt)
		}
		a.add("cursor", ep.ID, cur)
		failed, err := r.FailedDeliveries(ep.ID, "", 0)
		if err != nil {
			return fail("delivery", err)
		}
		for _, f := range failed {
			if f.Org == org {
				f.FailedAt = microsecond(f.FailedAt)
				a.add("failed", f)
			}
		}
	}
	out["delivery"] = a.sum()
	return out, nil
}

// area digests the records of one area: each part length-prefixed.
type area struct {
	h hash.Hash
	n int
}

func newArea() *area { return &area{h: sha256.New()} }

// add adds one record made of parts: bytes and strings as they are,
// anything else as its JSON.
func (a *area) add(parts ...any) {
	for _, p := range parts {
		var b []byte
		switch p := p.(type) {
		case []byte:
			b = p
		case string:
			b = []byte(p)
		default:
			b, _ = json.Marshal(p)
		}
		fmt.Fprintf(a.h, "%d:", len(b))
		a.h.Write(b)
	}
	a.n++
}

func (a *area) sum() AreaHash { return AreaHash{Count: a.n, Hash: hex.EncodeToString(a.h.Sum(nil))} }

// hashSnapshot adds the users, groups and memberships areas of org to
// out, reading them a page at a time.
func hashSnapshot(r ContentReader, org string, out map[string]AreaHash) error {
	const page = 1000
	users := newArea()
	for after := ""; ; {
		objs, err := r.Users(org, "", after, page)
		if err != nil {
			return err
		}
		for _, u := range objs {
			users.add([]byte(u))
		}
		if len(objs) < page {
			break
		}
		if after, err = objectID(objs[len(objs)-1]); err != nil {
			return err
		}
	}
	out["users"] = users.sum()

	groups := newArea()
	var gids []string
	for after := ""; ; {
		objs, err := r.Groups(org, after, page)
		if err != nil {
			return err
		}
		for _, g := range objs {
			groups.add([]byte(g))
			id, err := objectID(g)
			if err != nil {
				return err
			}
			gids = append(gids, id)
		}
		if len(objs) < page {
			break
		}
		after = gids[len(gids)-1]
	}
	out["groups"] = groups.sum()

	members := newArea()
	for _, gid := range gids {
		for after := ""; ; {
			objs, err := r.GroupUsers(org, gid, after, page)
			if err != nil {
				return err
			}
			for _, u := range objs {
				if after, err = objectID(u); err != nil {
					return err
				}
				members.add(gid, after)
			}
			if len(objs) < page {
				break
			}
		}
	}
	c, err := r.SnapshotCounts(org)
	if err != nil {
		return err
	}
	sum := members.sum()
	members.add(c) // the counts: part of the hash, not a membership
	out["memberships"] = AreaHash{Count: sum.Count, Hash: members.sum().Hash}
	return nil
}

// objectID returns the "id" of a directory object's JSON.
func objectID(raw []byte) (string, error) {
	var o struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("decode directory object: %w", err)
	}
	return o.ID, nil
}

// microsecond is t in UTC to the microsecond, which both stores keep.
func microsecond(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func microsecondPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := microsecond(*t)
	return &u
}
