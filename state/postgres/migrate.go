package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// The schema is a list of plain SQL files, migrations/NNNN_name.sql,
// applied in order. A file is never edited once released: a change to the
// schema is a new file. Each runs in its own transaction with the row that
// records it in rosterd.schema_migrations, so a migration is applied
// whole or not at all.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded migration file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded migrations in version order; versions
// start at 1 and have no gaps (a test checks it).
var migrations = func() []migration {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		panic(err)
	}
	return ms
}()

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: want version %d", m.version, m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this code reads and writes: the
// last embedded migration.
var SchemaVersion = len(migrations)

// migrateLockKey is the key of the session advisory lock that migrations
// run under (any 64-bit number no other application of the database
// uses; this one is "rosterd" in ASCII).
const migrateLockKey int64 = 0x726f7374657264

// Migration is what Migrate did.
type Migration struct {
	// From and To are the schema versions before and after (0: empty).
	From, To int
	// Applied are the versions applied, in order; none when the schema
	// was current.
	Applied []int
}

// Migrate applies the migrations the database at url lacks, under an
// advisory lock: several instances starting at once apply each migration
// once, the others wait and find the schema current. It returns
// state.ErrNewerSchema when the database was migrated by a newer rosterd.
// Open migrates too; `rosterd migrate` runs Migrate alone.
func Migrate(ctx context.Context, url string) (Migration, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return Migration{}, fmt.Errorf("migrate: %w", redactErr(err))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return Migration{}, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrateConn(ctx, conn, SchemaVersion)
}

// migrateConn brings the schema on conn to version target (at most
// SchemaVersion; tests ask for earlier ones).
func migrateConn(ctx context.Context, conn *pgx.Conn, target int) (Migration, error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return Migration{}, fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// A lost connection releases the lock as well.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrateLockKey)
	}()
	// Under the lock: two sessions creating the schema at once would fail
	// on its unique name.
	_, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS rosterd;
CREATE TABLE IF NOT EXISTS rosterd.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return Migration{}, fmt.Errorf("migrate: create the version table: %w", err)
	}
	var from int
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM rosterd.schema_migrations").Scan(&from); err != nil {
		return Migration{}, fmt.Errorf("migrate: read the schema version: %w", err)
	}
	m := Migration{From: from, To: from}
	if from > SchemaVersion {
		return m, fmt.Errorf("migrate: schema version %d, this rosterd reads up to %d: %w", from, SchemaVersion, state.ErrNewerSchema)
	}
	for _, mig := range migrations[from:target] {
		if err := applyMigration(ctx, conn, mig); err != nil {
			return m, err
		}
		m.To = mig.version
		m.Applied = append(m.Applied, mig.version)
	}
	return m, nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No arguments: the simple protocol, which runs several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO rosterd.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: apply %04d_%s: %w", m.version, m.name, err)
	}
	return nil
}

// checkVersion returns state.ErrNewerSchema when the schema is newer than
// this code, and an error when it is older (not migrated).
func checkVersion(ctx context.Context, q querier) error {
	var v int
	var table bool
	err := q.QueryRow(ctx, "SELECT to_regclass('rosterd.schema_migrations') IS NOT NULL").Scan(&table)
	if err == nil && table {
		err = q.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM rosterd.schema_migrations").Scan(&v)
	}
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("schema version %d, this rosterd reads up to %d: %w", v, SchemaVersion, state.ErrNewerSchema)
	case v < SchemaVersion:
		return fmt.Errorf("schema version %d, this rosterd needs %d: %w", v, SchemaVersion, ErrNotMigrated)
	}
	return nil
}

// ErrNotMigrated is returned by Open with Config.NoMigrate when the
// schema is older than this code: run `rosterd migrate`.
var ErrNotMigrated = errors.New("schema not migrated (run rosterd migrate)")
