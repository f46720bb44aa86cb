package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Importing another store's content (rosterd store copy back from
// PostgreSQL, SPEC §11): the other store reads its areas and hands them to
// an Importer, which writes them as this store keeps them, ids and all:
// audit records keep their ids (the bucket sequence follows the last),
// events keep their ids and commits (the event clock follows the other
// store's), the snapshot is written as rows. Events are stored as raw
// records (their data as the other store renders it), which read back
// byte for byte; they take more room than an apply's records, which name
// the batch's copies of users and groups.
//
// The writes go in transactions of about importTxBytes, not one: bbolt
// holds a transaction's dirty pages in memory. An import is therefore not
// atomic: the caller imports into a new file and puts it in place only
// once it verified it (ContentHash on both sides).

// ErrNotEmpty is returned by Import when the store holds state already.
var ErrNotEmpty = errors.New("store not empty")

// importTxBytes is about how many bytes of keys and values an import
// transaction writes before it commits.
const importTxBytes = 32 << 20

// Importer writes another store's content into this one; see Import.
// Its methods must be called from one goroutine.
type Importer struct {
	db      *DB
	tx      *bolt.Tx
	written int

	snapOrg string
	snap    *SnapshotTx

	// The commit being written (BeginCommit): its record, its bucket of
	// event records, the open block and its first index.
	commit   *commitRec
	ev       *bolt.Bucket
	blk      []byte
	blkFirst uint32
	next     uint32 // the index the next record of the block has
}

// EventCommit is one commit of events as another store keeps it: its
// sequence and time (the ids of its events), its event count and the
// index of its first retained event, when it was made, and its batch.
type EventCommit struct {
	Seq, Ms    uint64
	Count, Lo  uint32
	Created    time.Time
	Org, Batch string
}

// Empty reports whether the store holds no state: no organization, batch,
// event, endpoint or setup link, and no event ever committed.
func (db *DB) Empty() (bool, error) {
	empty := true
	err := db.bolt.View(func(tx *bolt.Tx) error {
		empty = emptyTx(tx)
		return nil
	})
	return empty, err
}

func emptyTx(tx *bolt.Tx) bool {
	for _, name := range [][]byte{bucketOrgs, bucketBatches, bucketCompletions, bucketEvents, bucketDeliveries, bucketSetupLinks, bucketAudit, bucketKeys, bucketSnapshots} {
		if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
			return false
		}
	}
	return getU64(tx.Bucket(bucketMeta).Get(keyEventSeq)) == 0
}

// Import runs fn, which writes another store's content through the
// Importer, into this store, which must be empty (ErrNotEmpty). On error
// what fn wrote so far may stay: import into a new file.
func (db *DB) Import(fn func(*Importer) error) error {
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	w := &Importer{db: db, tx: tx}
	defer func() {
		if w.tx != nil {
			w.tx.Rollback()
		}
	}()
	if !emptyTx(tx) {
		return fmt.Errorf("import: %w", ErrNotEmpty)
	}
	if err := fn(w); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if w.commit != nil {
		return errors.New("import: a commit of events was not ended")
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	err = w.tx.Commit()
	w.tx = nil
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// wrote counts n bytes written and, past importTxBytes, commits the
// transaction and begins the next.
func (w *Importer) wrote(n int) error {
	w.written += n
	if w.written < importTxBytes {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.tx.Commit(); err != nil {
		w.tx = nil
		return err
	}
	tx, err := w.db.bolt.Begin(true)
	if err != nil {
		w.tx = nil
		return err
	}
	w.tx, w.written, w.snap, w.ev = tx, 0, nil, nil
	return nil
}

// flush stores what is held in memory: the snapshot's counters and the
// open block of event records.
func (w *Importer) flush() error {
	if w.snap != nil {
		if err := w.snap.flush(); err != nil {
			return err
		}
	}
	if len(w.blk) > 1 {
		ev, err := w.events()
		if err != nil {
			return err
		}
		// bbolt holds blk until the commit; appending to it later leaves
		// the bytes it holds as they are, and the next put replaces them.
		return ev.Put(binary.BigEndian.AppendUint32(nil, w.blkFirst), w.blk)
	}
	return nil
}

func (w *Importer) put(b *bolt.Bucket, k, v []byte) error {
	if err := b.Put(k, v); err != nil {
		return err
	}
	return w.wrote(len(k) + len(v))
}

func (w *Importer) putJSON(b *bolt.Bucket, k []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.put(b, k, buf)
}

// Org stores an organization.
func (w *Importer) Org(o Org) error {
	return w.putJSON(w.tx.Bucket(bucketOrgs), []byte(o.Name), o)
}

// Key stores one of org's keys.
func (w *Importer) Key(org string, k Key) error {
	b, err := w.tx.Bucket(bucketKeys).CreateBucketIfNotExists([]byte(org))
	if err != nil {
		return err
	}
	return w.putJSON(b, []byte(k.Fingerprint), k)
}

// SetupLink stores a setup link.
func (w *Importer) SetupLink(l SetupLink) error {
	return w.putJSON(w.tx.Bucket(bucketSetupLinks), []byte(l.TokenSHA256), l)
}

// Audit stores org's audit records, oldest first, with their ids; the
// next record appended gets a later id.
func (w *Importer) Audit(org string, recs []AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	ob, err := w.tx.Bucket(bucketAudit).CreateBucketIfNotExists([]byte(org))
	if err != nil {
		return err
	}
	rb, err := ob.CreateBucketIfNotExists(auditRecordsKey)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := w.putJSON(rb, []byte(r.ID), r); err != nil {
			return err
		}
		// A commit rebinds the transaction: find the buckets again.
		ob = w.tx.Bucket(bucketAudit).Bucket([]byte(org))
		rb = ob.Bucket(auditRecordsKey)
	}
	last := recs[len(recs)-1].ID
	if len(last) != 32 {
		return fmt.Errorf("audit id %q: want 32 hex digits", last)
	}
	seq, err := strconv.ParseUint(last[16:], 16, 64)
	if err != nil {
		return fmt.Errorf("audit id %q: %w", last, err)
	}
	if err := rb.SetSequence(seq); err != nil {
		return err
	}
	return ob.Put(auditCountKey, binary.BigEndian.AppendUint64(nil, uint64(len(recs))))
}

// Batch stores a batch record and its report (none when report is nil).
func (w *Importer) Batch(b Batch, report []byte) error {
	recs, reps, err := batchBuckets(w.tx, b.Org)
	if err != nil {
		return err
	}
	if err := w.putJSON(recs, []byte(b.ID), b); err != nil {
		return err
	}
	if report == nil {
		return nil
	}
	_, reps, err = batchBuckets(w.tx, b.Org)
	if err != nil {
		return err
	}
	return w.put(reps, []byte(b.ID), report)
}

// Completions stores org's record of processed completions. Call it for
// every organization that has batches, even with none: Open seeds the
// record of an organization with batches and no record.
func (w *Importer) Completions(org string, c Completions) error {
	root, files, err := complBuckets(w.tx, org)
	if err != nil {
		return err
	}
	newest, err := root.CreateBucketIfNotExists(complNewest)
	if err != nil {
		return err
	}
	for k, v := range c.Newest {
		if err := putJSON(newest, []byte(k), v); err != nil {
			return err
		}
	}
	for k, v := range c.Files {
		if err := putJSON(files, []byte(k), v); err != nil {
			return err
		}
	}
	return w.wrote(512 * (len(c.Newest) + len(c.Files)))
}

// snapshot returns org's writable snapshot in the current transaction.
func (w *Importer) snapshot(org string) (*SnapshotTx, error) {
	if w.snap != nil && w.snapOrg == org {
		return w.snap, nil
	}
	if w.snap != nil {
		if err := w.snap.flush(); err != nil {
			return nil, err
		}
	}
	s, err := openSnapshot(w.tx, org)
	if err != nil {
		return nil, err
	}
	w.snap, w.snapOrg = s, org
	return s, nil
}

// User stores one user of org's snapshot.
func (w *Importer) User(org string, r UserRecord, active bool) error {
	s, err := w.snapshot(org)
	if err != nil {
		return err
	}
	rec := r.AppendBinary(nil)
	if err := s.PutUser([]byte(r.ID), active, rec); err != nil {
		return err
	}
	return w.wrote(len(r.ID) + len(rec))
}

// Group stores one group of org's snapshot: its name, its flags
// (GroupInFile) and its directory group JSON.
func (w *Importer) Group(org, id, name string, flags byte, doc []byte) error {
	s, err := w.snapshot(org)
	if err != nil {
		return err
	}
	if err := s.PutGroup([]byte(id), name, flags, doc); err != nil {
		return err
	}
	return w.wrote(2*len(id) + 2*len(name) + len(doc))
}

// Member stores one membership of org's snapshot; its user and group are
// stored first.
func (w *Importer) Member(org, uid, gid string) error {
	s, err := w.snapshot(org)
	if err != nil {
		return err
	}
	if err := s.AddMember([]byte(uid), []byte(gid)); err != nil {
		return err
	}
	return w.wrote(2 * (len(uid) + len(gid)))
}

// BeginCommit starts a commit of events; Event adds its retained events
// in index order and EndCommit stores its record, which makes them
// visible.
func (w *Importer) BeginCommit(c EventCommit) error {
	if w.commit != nil {
		return errors.New("a commit of events is open")
	}
	if c.Lo > c.Count {
		return fmt.Errorf("commit %d: first retained event %d of %d", c.Seq, c.Lo, c.Count)
	}
	w.commit = &commitRec{seq: c.Seq, ms: c.Ms, count: c.Count, lo: c.Lo, created: c.Created.UTC(), org: c.Org, batch: c.Batch}
	w.blk, w.ev = nil, nil
	_, err := w.events()
	return err
}

// events returns the event records bucket of the open commit in the
// current transaction, with its users and groups buckets (empty: the
// records are raw).
func (w *Importer) events() (*bolt.Bucket, error) {
	if w.ev != nil {
		return w.ev, nil
	}
	top, err := w.tx.CreateBucketIfNotExists(bucketEventData)
	if err != nil {
		return nil, err
	}
	data, err := top.CreateBucketIfNotExists(dataKey(w.commit.org, w.commit.batch))
	if err != nil {
		return nil, err
	}
	for _, name := range [][]byte{evEvents, evUsers, evGroups} {
		b, err := data.CreateBucketIfNotExists(name)
		if err != nil {
			return nil, err
		}
		b.FillPercent = 1
		if string(name) == string(evEvents) {
			w.ev = b
		}
	}
	return w.ev, nil
}

// Event adds event idx of the open commit: its type and data (the JSON
// of the event's "data"). Indexes rise; one left out is gone (purged).
func (w *Importer) Event(idx uint32, typ string, data []byte) error {
	c := w.commit
	if c == nil {
		return errors.New("no commit of events is open")
	}
	if idx < c.lo || idx >= c.count || (len(w.blk) > 1 && idx < w.next) {
		return fmt.Errorf("event %d of commit %d: out of order or range", idx, c.seq)
	}
	rec := appendLV([]byte{recRaw}, typ)
	rec = append(rec, data...)
	// A new block past eventBlockBytes, or when events in between are
	// missing by more than a block's worth of empty records.
	if len(w.blk) > 1 && (len(w.blk)+int(idx-w.next)+binary.MaxVarintLen32+len(rec) > eventBlockBytes) {
		if err := w.putBlock(); err != nil {
			return err
		}
	}
	if len(w.blk) <= 1 {
		w.blk = append(make([]byte, 0, eventBlockBytes), recBlock)
		w.blkFirst, w.next = idx, idx
	}
	for ; w.next < idx; w.next++ {
		w.blk = append(w.blk, 0) // a purged event: an empty record
	}
	w.blk = append(binary.AppendUvarint(w.blk, uint64(len(rec))), rec...)
	w.next++
	return nil
}

// putBlock stores the open block and closes it.
func (w *Importer) putBlock() error {
	ev, err := w.events()
	if err != nil {
		return err
	}
	blk := w.blk
	w.blk = nil // bbolt holds it until the commit
	return w.put(ev, binary.BigEndian.AppendUint32(nil, w.blkFirst), blk)
}

// EndCommit stores the open commit's last block and its record.
func (w *Importer) EndCommit() error {
	if w.commit == nil {
		return errors.New("no commit of events is open")
	}
	if len(w.blk) > 1 {
		if err := w.putBlock(); err != nil {
			return err
		}
	}
	c := *w.commit
	w.commit, w.ev = nil, nil
	if err := writeCommit(w.tx, c); err != nil {
		return err
	}
	return w.wrote(64 + len(c.org) + len(c.batch))
}

// EventClock sets the sequence and time (Unix ms) of the last commit of
// events: later commits draw later ones.
func (w *Importer) EventClock(seq, ms uint64) error {
	meta := w.tx.Bucket(bucketMeta)
	if err := meta.Put(keyEventSeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return err
	}
	return meta.Put(keyEventMs, binary.BigEndian.AppendUint64(nil, ms))
}

// Endpoint stores a webhook endpoint's state.
func (w *Importer) Endpoint(st EndpointState) error {
	b, err := w.tx.Bucket(bucketDeliveries).CreateBucketIfNotExists([]byte(st.ID))
	if err != nil {
		return err
	}
	return w.putJSON(b, keyEndpointState, st)
}

// Cursor stores an endpoint's cursor for an organization; the endpoint is
// stored first.
func (w *Importer) Cursor(endpoint, org string, c Cursor) error {
	b := w.tx.Bucket(bucketDeliveries).Bucket([]byte(endpoint))
	if b == nil {
		return fmt.Errorf("endpoint %s: %w", endpoint, ErrNotFound)
	}
	cb, err := b.CreateBucketIfNotExists(bucketCursors)
	if err != nil {
		return err
	}
	return w.putJSON(cb, []byte(org), c)
}

// Failed stores a failed delivery; its endpoint is stored first.
func (w *Importer) Failed(f FailedDelivery) error {
	b := w.tx.Bucket(bucketDeliveries).Bucket([]byte(f.Endpoint))
	if b == nil {
		return fmt.Errorf("endpoint %s: %w", f.Endpoint, ErrNotFound)
	}
	fb, err := b.CreateBucketIfNotExists(bucketFailed)
	if err != nil {
		return err
	}
	return w.putJSON(fb, []byte(f.EventID), f)
}

// Sync flushes the file to disk: for a store opened with NoSync.
func (db *DB) Sync() error { return db.bolt.Sync() }
