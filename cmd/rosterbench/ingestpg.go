package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// `rosterbench ingest -store URL` runs the phases on PostgreSQL: URL names
// a server and a role that may create databases (its database is only
// connected to, to create and drop others). The phases run in database
// rosterbench_work, which a first upload starts empty and every day-2
// phase copies from rosterbench_day1 (CREATE DATABASE ... TEMPLATE), the
// database the last first upload left, as the bbolt runs copy day1.db.
// Each pipeline run starts a new process with a new, empty replica
// (state/postgres/replica.go): the figures include loading it, as the
// first batch of an organization after a daemon's start does.

const (
	pgWork = "rosterbench_work"
	pgDay1 = "rosterbench_day1"
)

// pgServer is the server of -store.
type pgServer struct{ cfg *pgx.ConnConfig }

func newPGServer(url string) (*pgServer, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("-store: %w", err)
	}
	return &pgServer{cfg: cfg}, nil
}

// url returns the connection string of database name on the server.
func (s *pgServer) url(name string) string {
	u := fmt.Sprintf("host=%s port=%d dbname=%s", dsnValue(s.cfg.Host), s.cfg.Port, dsnValue(name))
	if s.cfg.User != "" {
		u += " user=" + dsnValue(s.cfg.User)
	}
	if s.cfg.Password != "" {
		u += " password=" + dsnValue(s.cfg.Password)
	}
	return u
}

// dsnValue quotes v for a keyword=value connection string, so that a
// space, a quote or a backslash (in a password, say) stays in the value.
func dsnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func (s *pgServer) exec(sqls ...string) error {
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// recreate makes database name anew: empty, or a copy of template.
func (s *pgServer) recreate(name, template string) error {
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	return s.exec("DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)", q)
}

// exists reports whether database name exists.
func (s *pgServer) exists(name string) bool {
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var n int
	conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	return n == 1
}

// size returns the size of database name in bytes.
func (s *pgServer) size(name string) int64 {
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var n int64
	conn.QueryRow(ctx, "SELECT pg_database_size($1)", name).Scan(&n)
	return n
}
