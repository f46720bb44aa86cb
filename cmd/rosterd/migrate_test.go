package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// TestMigrateCommandConcurrent: two `rosterd migrate` runs at once on an
// empty PostgreSQL database: both succeed, one applies the schema, the
// other finds it current; the version table holds each version once.
func TestMigrateCommandConcurrent(t *testing.T) {
	url := pgtest.NewDatabase(t)
	outs := make([]string, 2)
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() { outs[i], codes[i] = runBinary(t, "", "migrate", "--store", url) })
	}
	wg.Wait()
	applied, current := 0, 0
	for i := range outs {
		if codes[i] != 0 {
			t.Errorf("rosterd migrate #%d: exit %d\n%s", i, codes[i], outs[i])
		}
		switch {
		case strings.Contains(outs[i], "store schema migrated from version 0 to"):
			applied++
		case strings.Contains(outs[i], "nothing to apply"):
			current++
		}
	}
	if applied != 1 || current != 1 {
		t.Errorf("outputs %q; want one run that migrated and one that found nothing to apply", outs)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, max int
	if err := conn.QueryRow(context.Background(), "SELECT count(*), max(version) FROM rosterd.schema_migrations").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaVersion || max != postgres.SchemaVersion {
		t.Errorf("version table: %d rows up to %d; want %d", n, max, postgres.SchemaVersion)
	}
	// The store from the environment, again: nothing to apply.
	t.Setenv("ROSTERD_STORE", url)
	if out, code := runBinary(t, "", "migrate"); code != 0 || !strings.Contains(out, "nothing to apply") {
		t.Errorf("ROSTERD_STORE=... rosterd migrate = exit %d, %q; want nothing to apply", code, out)
	}
}

// TestMigrateCommandBolt: without a store, migrate opens the bbolt file of
// the data directory.
func TestMigrateCommandBolt(t *testing.T) {
	t.Setenv("ROSTERD_STORE", "")
	data := t.TempDir()
	if out, code := runBinary(t, "", "migrate", "--data", data); code != 1 || !strings.Contains(out, "no database at") {
		t.Errorf("rosterd migrate on an empty data directory = exit %d, %q; want exit 1, no database", code, out)
	}
	db, err := state.Open(filepath.Join(data, "rosterd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, code := runBinary(t, "", "migrate", "--data", data)
	if code != 0 || !strings.Contains(out, "at schema version") {
		t.Errorf("rosterd migrate --data = exit %d, %q; want the schema version", code, out)
	}
}

// TestStoreKey: a store that is not a PostgreSQL URL is refused, without
// its text (which may hold a password); serve on a PostgreSQL store it
// cannot reach fails without quoting the password either.
func TestStoreKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rosterd.toml")
	os.WriteFile(cfg, []byte(`store = "mysql://root:hunter2@db/rosterd"`+"\n"), 0o600)
	t.Setenv("ROSTERD_STORE", "")
	code, out, errOut := runCLI(t, "", "migrate", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "store: is not a postgres:// URL") || strings.Contains(out+errOut, "hunter2") {
		t.Errorf("migrate with store mysql:// = exit %d, %q %q; want exit 2 naming the key, without the password", code, out, errOut)
	}
	t.Setenv("ROSTERD_STORE", "postgres://rosterd:hunter2@db.invalid/rosterd")
	out2, code2 := runBinary(t, "", "serve", "--data", filepath.Join(dir, "data"), "--sftp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	if code2 == 0 || !strings.Contains(out2, "open store") || strings.Contains(out2, "hunter2") {
		t.Errorf("serve with an unreachable PostgreSQL store = exit %d, %q; want an error without the password", code2, out2)
	}
}
