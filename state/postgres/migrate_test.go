package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// versions returns the rows of the version table.
func versions(t *testing.T, url string) []string {
	t.Helper()
	rows, err := connect(t, url).Query(context.Background(), "SELECT version, name FROM rosterd.schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var v int
		var n string
		err := r.Scan(&v, &n)
		return fmt.Sprintf("%d %s", v, n), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func allVersions() []string {
	var out []string
	for _, m := range migrations {
		out = append(out, fmt.Sprintf("%d %s", m.version, m.name))
	}
	return out
}

// schemaOf describes schema rosterd: every column with its type,
// collation, nullability and default, every index, view and function.
func schemaOf(t *testing.T, url string) []string {
	t.Helper()
	rows, err := connect(t, url).Query(context.Background(), `
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || COALESCE(collation_name, '-') || ' ' ||
       is_nullable || ' ' || COALESCE(column_default, '-')
FROM information_schema.columns WHERE table_schema = 'rosterd'
UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'rosterd'
UNION ALL SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'rosterd'
UNION ALL SELECT 'function ' || p.proname || ' ' || pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'rosterd'
UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'rosterd'
ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrateFromEmpty(t *testing.T) {
	url := pgtest.NewDatabase(t)
	m, err := Migrate(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	var applied []int
	for v := 1; v <= SchemaVersion; v++ {
		applied = append(applied, v)
	}
	if want := (Migration{From: 0, To: SchemaVersion, Applied: applied}); !cmp.Equal(want, m) {
		t.Errorf("Migrate(empty) = %+v; want %+v", m, want)
	}
	if diff := cmp.Diff(allVersions(), versions(t, url)); diff != "" {
		t.Errorf("version table mismatch (-want +got):\n%s", diff)
	}
	// The stable views are there with their documented columns.
	conn := connect(t, url)
	for view, cols := range map[string]string{
		"directory_users": "organization_id, id, email, first_name, last_name, state, username, display_name, job_title, " +
			"employee_type, employment_start_date, department_name, division_name, cost_center_name, manager_id, manager_name, " +
			"manager_email, work_address_street, work_address_locality, work_address_region, work_address_postal_code, " +
			"work_address_country, custom_attributes, data",
		"directory_groups":        "organization_id, id, name, attributes, data",
		"directory_group_members": "organization_id, group_id, user_id",
		"events":                  "id, position, event, organization_id, batch_id, created_at, data",
	} {
		if _, err := conn.Exec(context.Background(), "SELECT "+cols+" FROM rosterd."+view+" LIMIT 0"); err != nil {
			t.Errorf("view rosterd.%s with columns %s: %v", view, cols, err)
		}
	}
	schema := schemaOf(t, url)
	// Again: nothing to apply, nothing changed.
	m, err = Migrate(context.Background(), url)
	if want := (Migration{From: SchemaVersion, To: SchemaVersion}); err != nil || !cmp.Equal(want, m) {
		t.Errorf("Migrate again = %+v, %v; want %+v", m, err, want)
	}
	if diff := cmp.Diff(schema, schemaOf(t, url)); diff != "" {
		t.Errorf("schema changed by a second Migrate (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(allVersions(), versions(t, url)); diff != "" {
		t.Errorf("version table after a second Migrate (-want +got):\n%s", diff)
	}
}

// TestMigrateConcurrent: instances starting at once on an empty database
// apply each migration once, under the lock; none fails.
func TestMigrateConcurrent(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 4
	results := make([]Migration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				results[i], errs[i] = Migrate(context.Background(), url)
				return
			}
			db, err := Open(context.Background(), Config{URL: url})
			if err == nil {
				db.Close()
				results[i] = Migration{From: -1}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	applied := map[int]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
		}
		for _, v := range results[i].Applied {
			applied[v]++
		}
	}
	// Open does not say what it applied; the Migrate runs either applied
	// everything or found the schema current.
	for v, c := range applied {
		if c != 1 {
			t.Errorf("version %d applied %d times by the Migrate runs; want at most once", v, c)
		}
	}
	if diff := cmp.Diff(allVersions(), versions(t, url)); diff != "" {
		t.Errorf("version table mismatch (-want +got):\n%s", diff)
	}
}

// TestMigrateUpgradeFromEachVersion: a database at each earlier version
// migrates to the same schema as a new one.
func TestMigrateUpgradeFromEachVersion(t *testing.T) {
	fresh := pgtest.NewDatabase(t)
	if _, err := Migrate(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	want := schemaOf(t, fresh)
	for v := 0; v < SchemaVersion; v++ {
		t.Run(fmt.Sprintf("from%d", v), func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			m, err := migrateConn(context.Background(), connect(t, url), v)
			if err != nil || m.To != v {
				t.Fatalf("migrate to %d = %+v, %v", v, m, err)
			}
			m, err = Migrate(context.Background(), url)
			if err != nil || m.From != v || m.To != SchemaVersion || len(m.Applied) != SchemaVersion-v {
				t.Fatalf("Migrate from %d = %+v, %v; want %d to %d", v, m, err, v, SchemaVersion)
			}
			if diff := cmp.Diff(want, schemaOf(t, url)); diff != "" {
				t.Errorf("schema upgraded from %d differs from a new one (-new +upgraded):\n%s", v, diff)
			}
		})
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if _, err := Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url).Exec(context.Background(), "INSERT INTO rosterd.schema_migrations (version, name) VALUES ($1, 'future')", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(context.Background(), url); !errors.Is(err, state.ErrNewerSchema) {
		t.Errorf("Migrate(newer) = %v; want ErrNewerSchema", err)
	}
	for _, noMigrate := range []bool{false, true} {
		if db, err := Open(context.Background(), Config{URL: url, NoMigrate: noMigrate}); !errors.Is(err, state.ErrNewerSchema) {
			if db != nil {
				db.Close()
			}
			t.Errorf("Open(newer, NoMigrate %v) = %v; want ErrNewerSchema", noMigrate, err)
		}
	}
}

func TestOpenNoMigrateRefusesOlderSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if db, err := Open(context.Background(), Config{URL: url, NoMigrate: true}); !errors.Is(err, ErrNotMigrated) {
		if db != nil {
			db.Close()
		}
		t.Errorf("Open(NoMigrate) on an empty database = %v; want ErrNotMigrated", err)
	}
	if _, err := migrateConn(context.Background(), connect(t, url), 0); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(context.Background(), Config{URL: url, NoMigrate: true}); !errors.Is(err, ErrNotMigrated) {
		if db != nil {
			db.Close()
		}
		t.Errorf("Open(NoMigrate) on an unmigrated schema = %v; want ErrNotMigrated", err)
	}
	if _, err := Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), Config{URL: url, NoMigrate: true})
	if err != nil {
		t.Fatalf("Open(NoMigrate) on a migrated schema = %v", err)
	}
	db.Close()
}

// TestFailedMigrationChangesNothing: a migration that fails leaves
// neither its changes nor its version row.
func TestFailedMigrationChangesNothing(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	if _, err := migrateConn(context.Background(), conn, SchemaVersion); err != nil {
		t.Fatal(err)
	}
	bad := migration{version: SchemaVersion + 1, name: "bad", sql: "CREATE TABLE rosterd.half (x int); SELECT 1/0;"}
	if err := applyMigration(context.Background(), conn, bad); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("applyMigration(bad) = %v; want an error naming it", err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'rosterd' AND tablename = 'half'").Scan(&n); err != nil || n != 0 {
		t.Errorf("table of the failed migration: %d, %v; want none", n, err)
	}
	if diff := cmp.Diff(allVersions(), versions(t, url)); diff != "" {
		t.Errorf("version table after a failed migration (-want +got):\n%s", diff)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := loadMigrations(fstest.MapFS{"migrations/0002_b.sql": file("B"), "migrations/0001_a.sql": file("A")})
	if err != nil || len(ms) != 2 || ms[0].name != "a" || ms[1].sql != "B" {
		t.Errorf("loadMigrations(1, 2) = %+v, %v; want a then b", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"a gap":     {"migrations/0001_a.sql": file(""), "migrations/0003_c.sql": file("")},
		"no number": {"migrations/init.sql": file("")},
		"zero":      {"migrations/0000_z.sql": file("")},
		"no one":    {"migrations/0002_b.sql": file("")},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("loadMigrations(%s) = nil; want an error", name)
		}
	}
	if len(migrations) == 0 || SchemaVersion != len(migrations) {
		t.Errorf("embedded migrations: %d, SchemaVersion %d", len(migrations), SchemaVersion)
	}
}

// TestMigrateKeepsBatches: batch records, reports and completions
// written at each earlier version read back the same after the upgrade,
// and the batch operations work on them.
func TestMigrateKeepsBatches(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)
	want := state.Batch{ID: "B1", Org: "acme", Status: state.BatchHeld, CreatedAt: t0, Reason: "would delete 40 % of users",
		Files: []state.BatchFile{{Name: "users.csv", Kind: "users", Size: 12, SHA256: "ab", CompletedAt: t0}}}
	rec, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	compl, err := json.Marshal(state.Completion{Name: "users.csv", Kind: "users", Size: 12, SHA256: "ab", CompletedAt: t0, Batch: "B1"})
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v < SchemaVersion; v++ {
		t.Run(fmt.Sprintf("from%d", v), func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			conn := connect(t, url)
			if _, err := migrateConn(context.Background(), conn, v); err != nil {
				t.Fatal(err)
			}
			// What version 1 stores: the record as jsonb.
			_, err := conn.Exec(context.Background(), `
INSERT INTO rosterd.organizations (name, created_at) VALUES ('acme', now());
INSERT INTO rosterd.batches (org, id, status, created_at, record, report) VALUES ('acme', 'B1', 'held', now(), '`+string(rec)+`', '{"held": true}');
INSERT INTO rosterd.completion_files (org, name, record) VALUES ('acme', 'users.csv', '`+string(compl)+`');
INSERT INTO rosterd.completions_newest (org, kind, record) VALUES ('acme', 'users', '`+string(compl)+`')`)
			if err != nil {
				t.Fatal(err)
			}
			db, err := Open(context.Background(), Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			got, err := db.Batch("acme", "B1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("batch after the upgrade (-want +got):\n%s", diff)
			}
			if rep, err := db.BatchReport("acme", "B1"); err != nil || string(rep) != `{"held": true}` {
				t.Errorf("report after the upgrade = %s, %v", rep, err)
			}
			if c, err := db.Completions("acme"); err != nil || c.Files["users.csv"].Batch != "B1" || c.Newest["users"].SHA256 != "ab" {
				t.Errorf("completions after the upgrade = %+v, %v", c, err)
			}
			sup, err := db.FormBatch(state.Batch{ID: "B2", Org: "acme", Status: state.BatchPending, LastError: "a \x00 byte"}, nil)
			if err != nil || len(sup) != 1 || sup[0].ID != "B1" {
				t.Errorf("FormBatch after the upgrade superseded %v, %v; want B1", sup, err)
			}
			if b, err := db.Batch("acme", "B2"); err != nil || b.LastError != "a \x00 byte" {
				t.Errorf("new batch after the upgrade = %+v, %v", b, err)
			}
		})
	}
}
