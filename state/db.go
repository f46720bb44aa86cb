package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this code reads and writes. Open
// migrates older databases forward and refuses newer ones. Version 2
// stores a batch's event records in blocks (events.go), which version 1
// code would misread; version 2 code reads version 1 events as they are,
// so the move from 1 to 2 changes nothing.
const SchemaVersion = 2

var (
	bucketMeta       = []byte("meta")
	bucketOrgs       = []byte("orgs")
	bucketKeys       = []byte("keys")
	bucketSnapshots  = []byte("snapshots")
	bucketBatches    = []byte("batches")
	bucketEvents     = []byte("events")
	bucketDeliveries = []byte("deliveries")
	bucketAudit      = []byte("audit")
	bucketEventOrgs  = []byte("event_orgs") // per-organization event index (events.go)
	bucketSetupLinks = []byte("setup_links")
	// bucketCompletions (completions.go) is declared beside its code.

	keySchemaVersion = []byte("schema_version")
)

// topBuckets are created at Open. perOrgBuckets hold one nested bucket per
// organization, removed with it.
var (
	topBuckets    = [][]byte{bucketMeta, bucketOrgs, bucketKeys, bucketSnapshots, bucketBatches, bucketEvents, bucketDeliveries, bucketAudit, bucketEventOrgs, bucketSetupLinks, bucketCompletions}
	perOrgBuckets = [][]byte{bucketKeys, bucketSnapshots, bucketBatches, bucketAudit, bucketCompletions}
)

// migrations[v] moves a database from version v to v+1 inside the Open
// transaction.
var migrations = map[uint64]func(tx *bolt.Tx) error{}

// DB is the state store. Its methods are safe for concurrent use.
type DB struct {
	bolt    *bolt.DB
	now     func() time.Time
	faultFn func(point string) error
	leases  leaseTable
}

// Options tunes Open. The zero value is the default.
type Options struct {
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// can then lose or corrupt committed data.
	NoSync bool
	// Fault, for tests only, is called at each point where a batch
	// operation writes (see FaultPoints); an error it returns fails that
	// write's transaction as a full disk would, so tests drive the same
	// code path as ENOSPC from bbolt. nil in production.
	Fault func(point string) error
}

// FaultPoints are the points where Options.Fault is called: "form"
// (FormBatch), "archived" (RecordArchived), "apply" (the transaction of
// ApplyBatch and FinishBatch), "change" (each ApplyTx.Checkpoint),
// "stage" (each staging commit), "flip" (the flip of a staged apply) and
// "merge" (each MergeOverlay transaction). The bookkeeping of failures
// (RecordFailure, SupersedeBatch) has none: it must be able to say what
// failed.
var FaultPoints = []string{"form", "archived", "apply", "change", "stage", "flip", "merge"}

// fault returns the injected error for point, if any.
func (db *DB) fault(point string) error {
	if db.faultFn == nil {
		return nil
	}
	return db.faultFn(point)
}

// allocSize is how much bbolt grows the file by, past what a commit needs,
// once the file is larger than that: each growth is a truncate and an
// fsync (the file's size must be on disk before the meta page that needs
// it). bbolt's 16 MB made a million-user first upload, 1.6 GB written in
// about 290 staging commits, grow the file about a hundred times, the
// fsyncs 1.5 s of its wall time. The space is a hole in the file until
// pages are written there.
const allocSize = 128 << 20

// Open opens or creates the database at path (0600), creates the buckets
// and migrates the schema. It waits up to a second for the file lock and
// then returns ErrLocked: another process has the database open.
func Open(path string, opts *Options) (*DB, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	// The map freelist allocates in constant time however fragmented the
	// file. The freelist is still written at each commit (8 bytes a free
	// page; 2,000 to 20,000 pages after a day-2 batch at a million users):
	// NoFreelistSync would instead rebuild it at every open by reading
	// every page, 1.4 to 1.7 s for a 2.3 GB file in the page cache and a
	// read of the whole file from disk otherwise. InitialMmapSize is left
	// alone: bbolt maps files over 1 GB in whole GB, so a day-2 batch
	// (tens of MB of growth) seldom remaps. mmapFlags populates the map
	// on Linux (mmap_linux.go).
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: opts.NoSync,
		FreelistType: bolt.FreelistMapType, MmapFlags: mmapFlags(path)})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	b.AllocSize = allocSize
	db := &DB{bolt: b, now: time.Now, faultFn: opts.Fault}
	if err := b.Update(db.init); err != nil {
		b.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return db, nil
}

func (db *DB) init(tx *bolt.Tx) error {
	for _, name := range topBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	var v uint64
	if raw := meta.Get(keySchemaVersion); raw != nil {
		v = binary.BigEndian.Uint64(raw)
	} else {
		v = SchemaVersion // a new database starts at the current layout
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d, this rosterd reads up to %d: %w", v, SchemaVersion, ErrNewerSchema)
	}
	for ; v < SchemaVersion; v++ {
		if m := migrations[v]; m != nil {
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
	}
	if err := seedCompletions(tx); err != nil {
		return fmt.Errorf("seed completions: %w", err)
	}
	return meta.Put(keySchemaVersion, binary.BigEndian.AppendUint64(nil, v))
}

// Close closes the database. Pending write transactions finish first.
func (db *DB) Close() error { return db.bolt.Close() }

// Path returns the database file's path.
func (db *DB) Path() string { return db.bolt.Path() }

// orgBucket returns org's nested bucket under top, or nil.
func orgBucket(tx *bolt.Tx, top []byte, org string) *bolt.Bucket {
	return tx.Bucket(top).Bucket([]byte(org))
}
