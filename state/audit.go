package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditKeep is how many audit records an organization keeps when
// AppendAudit is given no other bound: the newest 10,000. A count, not an
// age, so that the trail's size is bounded whatever the traffic; a flood
// of refused logins (itself bounded by the ban list) can push older
// records out sooner.
const AuditKeep = 10_000

// AuditRecord is one entry of an organization's audit trail: the SFTP
// side (SPEC §3) and the uses of its setup links (SPEC §10). Fields that
// do not apply to Event are zero.
type AuditRecord struct {
	// ID sorts in append order within the organization; it is the cursor
	// of AuditRecords. Set by AppendAudit.
	ID         string        `json:"-"`
	Org        string        `json:"-"`
	Time       time.Time     `json:"time"`
	Event      string        `json:"event"`
	RemoteAddr string        `json:"remote_addr,omitempty"`
	KeyFP      string        `json:"key_fp,omitempty"`
	Session    string        `json:"session,omitempty"`
	File       string        `json:"file,omitempty"`
	Target     string        `json:"target,omitempty"`
	Bytes      int64         `json:"bytes,omitempty"`
	SHA256     string        `json:"sha256,omitempty"`
	Duration   time.Duration `json:"duration_ns,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	// SetupLink is the id of the setup link a setup.* record was made
	// through (SPEC §10: every use of a link is audited).
	SetupLink string `json:"setup_link,omitempty"`
}

// Layout of the audit bucket: audit/<org>/ holds the record count under
// auditCountKey and the records in the nested bucket auditRecordsKey,
// keyed by ID. An ID is 32 hex digits: the record's time in Unix
// nanoseconds, raised where needed so that IDs never go back in time, then
// the bucket's sequence number. IDs therefore sort in append order, and a
// reader paging oldest-first never misses a record appended later.
var (
	auditCountKey   = []byte("count")
	auditRecordsKey = []byte("records")
)

// AppendAudit stores records in one transaction, each under its Org, and
// then drops each organization's oldest records beyond keep (keep <= 0
// means AuditKeep). Records of an organization that does not exist (a
// failed login naming an unknown organization, an organization removed
// meanwhile) are skipped, so that nobody can grow the trail by naming
// organizations. The records' IDs are not set in recs.
func (db *DB) AppendAudit(recs []AuditRecord, keep int) error {
	if keep <= 0 {
		keep = AuditKeep
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		orgs, top := tx.Bucket(bucketOrgs), tx.Bucket(bucketAudit)
		byOrg := map[string][]AuditRecord{}
		var order []string
		for _, r := range recs {
			if r.Org == "" || orgs.Get([]byte(r.Org)) == nil {
				continue
			}
			if _, ok := byOrg[r.Org]; !ok {
				order = append(order, r.Org)
			}
			byOrg[r.Org] = append(byOrg[r.Org], r)
		}
		for _, org := range order {
			if err := appendAuditTx(top, org, byOrg[org], keep); err != nil {
				return fmt.Errorf("%s: %w", org, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

func appendAuditTx(top *bolt.Bucket, org string, recs []AuditRecord, keep int) error {
	ob, err := top.CreateBucketIfNotExists([]byte(org))
	if err != nil {
		return err
	}
	rb, err := ob.CreateBucketIfNotExists(auditRecordsKey)
	if err != nil {
		return err
	}
	var count uint64
	if raw := ob.Get(auditCountKey); len(raw) == 8 {
		count = binary.BigEndian.Uint64(raw)
	}
	var last int64
	if k, _ := rb.Cursor().Last(); k != nil {
		last, _ = auditIDTime(k)
	}
	for _, r := range recs {
		seq, err := rb.NextSequence()
		if err != nil {
			return err
		}
		t := max(r.Time.UnixNano(), last)
		last = t
		buf, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := rb.Put(auditID(t, seq), buf); err != nil {
			return err
		}
		count++
	}
	if count > uint64(keep) {
		c := rb.Cursor()
		for k, _ := c.First(); k != nil && count > uint64(keep); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			count--
		}
	}
	return ob.Put(auditCountKey, binary.BigEndian.AppendUint64(nil, count))
}

func auditID(nanos int64, seq uint64) []byte {
	return fmt.Appendf(nil, "%016x%016x", uint64(nanos), seq)
}

func auditIDTime(id []byte) (int64, error) {
	if len(id) != 32 {
		return 0, fmt.Errorf("audit id %q: bad length", id)
	}
	n, err := strconv.ParseUint(string(id[:16]), 16, 64)
	return int64(n), err
}

// AuditOrder is the order of AuditRecords.
type AuditOrder int

const (
	// NewestFirst lists the most recent records first; the next page holds
	// older ones.
	NewestFirst AuditOrder = iota
	// OldestFirst lists in append order; paging with the last ID seen
	// follows the trail as it grows.
	OldestFirst
)

// AuditRecords returns up to limit of org's audit records (limit <= 0: all)
// in the given order, starting after the record with ID after ("" = from
// the start). after need not be a stored ID: the page starts at the first
// ID beyond it in that order. It returns ErrNotFound when the organization
// does not exist.
func (db *DB) AuditRecords(org, after string, limit int, order AuditOrder) ([]AuditRecord, error) {
	var out []AuditRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(org)) == nil {
			return ErrNotFound
		}
		ob := tx.Bucket(bucketAudit).Bucket([]byte(org))
		if ob == nil {
			return nil
		}
		rb := ob.Bucket(auditRecordsKey)
		if rb == nil {
			return nil
		}
		c := rb.Cursor()
		var k, v []byte
		cur := []byte(after)
		switch {
		case order == OldestFirst && after == "":
			k, v = c.First()
		case order == OldestFirst:
			k, v = c.Seek(cur)
			if k != nil && bytes.Equal(k, cur) {
				k, v = c.Next()
			}
		case after == "":
			k, v = c.Last()
		default:
			// The last key below after: Seek finds the first key >= after.
			if k, _ = c.Seek(cur); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = auditStep(c, order) {
			r := AuditRecord{ID: string(k), Org: org}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit of %s: %w", org, err)
	}
	return out, nil
}

func auditStep(c *bolt.Cursor, order AuditOrder) ([]byte, []byte) {
	if order == OldestFirst {
		return c.Next()
	}
	return c.Prev()
}
