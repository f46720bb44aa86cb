package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// blockEvents applies n raw events to org, staged, three a transaction:
// sizes from a few bytes to more than a block, so that blocks end in
// every way (full, cut by a commit, one oversized record alone).
func blockEvents(t *testing.T, db *DB, org string, n int) []string {
	t.Helper()
	b := newBatch(t, db, org, "B"+org)
	b.Status = BatchApplied
	var want []string
	err := db.ApplyBatchStaged(b, nil, 3, func(a *ApplyTx) error {
		for i := range n {
			pad := strings.Repeat("x", i*37%300)
			if i%97 == 5 {
				pad = strings.Repeat("y", eventBlockBytes+100)
			}
			data := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)
			want = append(want, data)
			if _, err := a.Emit(EventUserCreated, []byte(data)); err != nil {
				return err
			}
			if err := a.Checkpoint(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func eventKeys(t *testing.T, db *DB, org string) int {
	t.Helper()
	n := 0
	db.bolt.View(func(tx *bolt.Tx) error {
		n = eventData(tx, org, "B"+org).Bucket(evEvents).Stats().KeyN
		return nil
	})
	return n
}

// TestEventBlocks reads events stored several to a bbolt value: the whole
// feed, pages that start inside a block, single events, after deleting
// one, and after a retention purge that ends inside a block.
func TestEventBlocks(t *testing.T) {
	db := openTestOrg(t, "acme")
	const n = 700
	want := blockEvents(t, db, "acme", n)
	if k := eventKeys(t, db, "acme"); k >= n/4 {
		t.Errorf("%d events in %d values of e; want blocks", n, k)
	}
	evs, err := db.Events("acme", "", 0)
	if err != nil || len(evs) != n {
		t.Fatalf("Events = %d, %v; want %d", len(evs), err, n)
	}
	var ids, got []string
	for _, e := range evs {
		ids = append(ids, e.ID)
		got = append(got, string(e.Data))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("event data (-want +got):\n%s", diff)
	}
	paged := pagedEventIDs(t, db, "acme", 13)
	if diff := cmp.Diff(ids, paged); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
	for _, i := range []int{0, 1, 5, 6, 63, 64, 350, n - 1} {
		e, err := db.Event(ids[i])
		if err != nil || string(e.Data) != want[i] {
			t.Errorf("Event(%d) = %.40s, %v; want %.40s", i, e.Data, err, want[i])
		}
	}

	err = db.bolt.Update(func(tx *bolt.Tx) error { return deleteEventTx(tx, []byte(ids[300])) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Event(ids[300]); err == nil {
		t.Errorf("Event(300) after deleting it: found")
	}
	for _, i := range []int{299, 301} {
		if e, err := db.Event(ids[i]); err != nil || string(e.Data) != want[i] {
			t.Errorf("Event(%d) after deleting 300 = %.40s, %v", i, e.Data, err)
		}
	}

	keys := eventKeys(t, db, "acme")
	purged, err := db.PurgeEvents(context.Background(), time.Now().Add(time.Hour), func(string) (string, bool) { return ids[229], true })
	if err != nil || purged != 230 {
		t.Fatalf("PurgeEvents = %d, %v; want 230", purged, err)
	}
	if k := eventKeys(t, db, "acme"); k >= keys || k < (n-230)*keys/n {
		t.Errorf("after purging 230 of %d events, %d of %d values of e; want the blocks below 230 gone, the rest kept", n, k, keys)
	}
	evs, _ = db.Events("acme", "", 0)
	if len(evs) != n-231 || evs[0].ID != ids[230] || string(evs[0].Data) != want[230] {
		t.Fatalf("after the purge: %d events from %s; want %d from %s", len(evs), evs[0].ID, n-231, ids[230])
	}
}

// TestEventsBeforeBlocks reads events stored one to a value, as a
// database written before blocks holds them, with one of them purged.
func TestEventsBeforeBlocks(t *testing.T) {
	db, _ := openTest(t)
	if err := db.CreateOrg(Org{Name: "old"}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketEventData)
		if err != nil {
			return err
		}
		data, err := top.CreateBucket(dataKey("old", "B1"))
		if err != nil {
			return err
		}
		e, err := data.CreateBucket(evEvents)
		if err != nil {
			return err
		}
		for i := range uint32(n) {
			if i == 4 {
				continue // purged
			}
			v := appendLV([]byte{recRaw}, EventGroupCreated)
			v = fmt.Appendf(v, `{"n":%d}`, i)
			if err := e.Put(binary.BigEndian.AppendUint32(nil, i), v); err != nil {
				return err
			}
		}
		seq, ms, err := db.nextCommit(tx)
		if err != nil {
			return err
		}
		return writeCommit(tx, commitRec{seq: seq, ms: ms, count: n, created: created, org: "old", batch: "B1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events("old", "", 0)
	if err != nil || len(evs) != n-1 {
		t.Fatalf("Events = %d, %v; want %d", len(evs), err, n-1)
	}
	for j, e := range evs {
		i := j
		if j >= 4 {
			i++
		}
		if string(e.Data) != fmt.Sprintf(`{"n":%d}`, i) || e.Event != EventGroupCreated || !e.CreatedAt.Equal(created) {
			t.Errorf("event %d = %+v", i, e)
		}
	}
	if e, err := db.Event(evs[6].ID); err != nil || string(e.Data) != `{"n":7}` {
		t.Errorf("Event(7) = %+v, %v", e, err)
	}
}

// TestOpenMovesVersion1Forward opens a database of layout version 1: it
// becomes version 2 (whose code reads version 1's events as they are,
// TestEventsBeforeBlocks), which a version 1 rosterd then refuses.
func TestOpenMovesVersion1Forward(t *testing.T) {
	db, path := openTest(t)
	if err := db.CreateOrg(Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.BigEndian.AppendUint64(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open(version 1) = %v", err)
	}
	defer db.Close()
	var v uint64
	db.bolt.View(func(tx *bolt.Tx) error {
		v = getU64(tx.Bucket(bucketMeta).Get(keySchemaVersion))
		return nil
	})
	if v != SchemaVersion {
		t.Errorf("schema version after Open = %d; want %d", v, SchemaVersion)
	}
}

// pagedEventIDs reads org's feed (all organizations' for "") limit events
// a page, following the cursor, and returns the ids in order.
func pagedEventIDs(t *testing.T, db *DB, org string, limit int) []string {
	t.Helper()
	var ids []string
	for after := ""; ; {
		page, err := db.Events(org, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return ids
		}
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		after = page[len(page)-1].ID
	}
}
