package postgres

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	templateOnce sync.Once
	templateErr  error
)

// templateDB is a database with the schema migrated, which newDB copies:
// faster than migrating each test's database.
const templateDB = "rosterd_template"

// newDB returns the URL of a new database with the current schema.
func newDB(t testing.TB) string {
	t.Helper()
	c := pgtest.Require(t)
	templateOnce.Do(func() {
		if templateErr = c.Exec("postgres", "CREATE DATABASE "+templateDB); templateErr != nil {
			return
		}
		_, templateErr = Migrate(context.Background(), c.URL(templateDB))
	})
	if templateErr != nil {
		t.Fatalf("template database: %v", templateErr)
	}
	return c.NewDatabase(t, templateDB)
}

// openTest opens a store on a new database, closed when t ends.
func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{URL: newDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
