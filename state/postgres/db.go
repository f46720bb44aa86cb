package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultTimeout bounds one operation when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures Open. A zero field means the documented default.
type Config struct {
	// URL is the connection string: "postgres://user:pass@host:5432/db"
	// or "host=/run/postgresql dbname=rosterd" (libpq's forms, with the
	// PG* environment variables for what it leaves out). Pool settings
	// such as pool_max_conns go in it too. Required.
	URL string
	// Timeout bounds each operation (a query or a transaction): a store
	// that stops answering fails the operation rather than hang its
	// caller. Default DefaultTimeout.
	Timeout time.Duration
	// NoMigrate makes Open refuse a schema older than this code
	// (ErrNotMigrated) instead of migrating it: for operators who run
	// `rosterd migrate` as a step of their own.
	NoMigrate bool
	// Logger receives the migrations applied at Open; nil discards.
	Logger *slog.Logger
	// Instance names this instance in a fleet: the holder of the leases
	// it acquires (AcquireLease), shown to operators (Leases). Default:
	// the host name, the process id and a random suffix.
	Instance string
	// Fenced makes the writes to an organization's batches and
	// completions, and to an endpoint's delivery state for an
	// organization, commit only while this instance holds their lease
	// (state.BatchLease, state.DeliveryLease), checked in the writing
	// transaction; without it they fail with state.ErrLeaseLost. Off (the
	// default), writes are not checked: one instance, `rosterd migrate`,
	// `store copy`, tests.
	Fenced bool
	// ReplicaDir is where the instance keeps its local copy of the
	// snapshots it applies batches to (replica.go): a scratch bbolt file,
	// rebuilt from the database when in doubt and deleted at Close.
	// Default: a new directory under os.TempDir().
	ReplicaDir string
}

// DB is the PostgreSQL store. Its methods are those of state.DB, with the
// same semantics (one contract test suite runs against both, see
// state/storetest), and are safe for concurrent use by any number of
// goroutines and processes: what state.DB gets from bbolt's single writer,
// DB gets from transactions and row locks.
type DB struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	now     func() time.Time
	// base is cancelled by Close, so that operations still running fail
	// at once.
	base   context.Context
	cancel context.CancelFunc

	instance string
	fenced   bool
	mu       sync.Mutex
	held     map[string]int64 // lease name -> token this instance acquired

	rep replica // the local copy of snapshots the differ reads (replica.go)
}

// Open connects to the database at cfg.URL, applies the migrations it
// lacks (under the migration lock, see Migrate) and returns the store.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.URL == "" {
		return nil, errors.New("open store: no URL")
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", redactErr(err))
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Migrations (or the version check) on a connection of their own: the
	// migration lock is a session's.
	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	var m Migration
	if cfg.NoMigrate {
		err = checkVersion(ctx, conn)
	} else {
		m, err = migrateConn(ctx, conn, SchemaVersion)
	}
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if len(m.Applied) > 0 {
		logger.Info("store migrated", "from", m.From, "to", m.To)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := &DB{pool: pool, timeout: cfg.Timeout, now: time.Now, instance: cfg.Instance, fenced: cfg.Fenced, held: map[string]int64{}}
	db.rep.dir = cfg.ReplicaDir
	if db.instance == "" {
		db.instance = defaultInstance()
	}
	if db.timeout <= 0 {
		db.timeout = DefaultTimeout
	}
	db.base, db.cancel = context.WithCancel(context.Background())
	return db, nil
}

// Instance is this instance's name in the fleet (Config.Instance, or its
// default): the holder of the leases it acquires.
func (db *DB) Instance() string { return db.instance }

// defaultInstance is the host name, the process id and a random suffix:
// unique among live processes, readable by an operator.
func defaultInstance() string {
	host, _ := os.Hostname()
	var r [3]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), r)
}

// Close cancels the operations in flight and closes the connections.
func (db *DB) Close() error {
	db.cancel()
	db.pool.Close()
	return db.rep.close()
}

// op returns the context of one operation: bounded by the timeout,
// cancelled by Close.
func (db *DB) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(db.base, db.timeout)
}

// long returns the context of an operation whose time grows with the
// data (loading the replica, applying a batch): cancelled by Close, with
// no deadline of its own.
func (db *DB) long() (context.Context, context.CancelFunc) {
	return context.WithCancel(db.base)
}

// stamp is the time the store records for "now": UTC, to the microsecond
// PostgreSQL keeps, so that what an operation returns equals what a later
// read returns.
func (db *DB) stamp() time.Time { return db.now().UTC().Truncate(time.Microsecond) }

// tx runs fn in a transaction of one operation.
func (db *DB) tx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := db.op()
	defer cancel()
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// read runs fn in a read-only transaction that sees one snapshot of the
// database (repeatable read), as a bbolt View does.
func (db *DB) read(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := db.op()
	defer cancel()
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return pgx.BeginTxFunc(ctx, db.pool, opts, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// querier is what a pool, a connection and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// redactErr replaces a connection string parse error, whose text quotes
// the string (and so perhaps a password), with one that does not.
func redactErr(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the store URL (not shown: it may hold a password)")
	}
	return err
}

// limitArg is the LIMIT argument for a limit where <= 0 means all: NULL.
func limitArg(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}

// nullTime returns nil for the zero time, else a pointer to t: a NULL
// column for Go's zero value.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// derefTime is the inverse of nullTime.
func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// utcPtr returns t in UTC, nil staying nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
