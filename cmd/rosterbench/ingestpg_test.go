package main

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPGServerURL: the connection string of another database on -store's
// server keeps the host, port, user and a password with a space, a quote
// and a backslash.
func TestPGServerURL(t *testing.T) {
	s, err := newPGServer(`postgres://bench:p%20a'ss%5Cword@/postgres?host=/run/pg%20sock&port=5433`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.ParseConfig(s.url("rosterbench_work"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "/run/pg sock" || got.Port != 5433 || got.Database != "rosterbench_work" || got.User != "bench" || got.Password != `p a'ss\word` {
		t.Errorf("url = host %q port %d db %q user %q password %q", got.Host, got.Port, got.Database, got.User, got.Password)
	}
}
