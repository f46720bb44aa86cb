package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// migrateCommand is `rosterd migrate` (SPEC §11): bring the store's schema
// to this binary's version, alone, before starting (or upgrading) the
// daemons that share it.
func migrateCommand() *command {
	return &command{
		name: "migrate", summary: "apply the store's schema migrations and exit",
		about: "Bring the store's schema to this rosterd's version and exit. With a PostgreSQL\n" +
			"store (--store, ROSTERD_STORE or the config key store) the migrations run\n" +
			"under an advisory lock, so several instances starting or migrating at once\n" +
			"apply each migration once. Without one, the bbolt file in the data directory\n" +
			"is migrated (serve does that at start too); the daemon must not be running.",
		example: "rosterd migrate --store postgres://rosterd@db.example.com/rosterd\n" +
			"rosterd migrate --config /etc/rosterd/rosterd.toml\n" +
			"rosterd migrate --data /var/lib/rosterd",
		setup: func(fs *flag.FlagSet) action {
			f := &serveFlags{fs: fs}
			fs.StringVar(&f.config, "config", "", "TOML config `FILE` ($ROSTERD_CONFIG), read for store and data")
			fs.StringVar(&f.data, "data", "", "data `DIR` of a bbolt store ($ROSTERD_DATA; config key data; default ./rosterd-data)")
			fs.StringVar(&f.store, "store", "", "the store, a postgres:// `URL` ($ROSTERD_STORE; config key store; default the bbolt file in the data directory)")
			return func(ctx context.Context, std stdio, args []string) error {
				cfg, err := loadConfig(f, os.Getenv)
				if err != nil {
					return &ExitCodeError{Code: 2, Err: fmt.Errorf("configuration: %w", err)}
				}
				if cfg.Store == "" {
					return migrateBolt(cfg, std)
				}
				m, err := postgres.Migrate(ctx, cfg.Store)
				if err != nil {
					return err
				}
				if len(m.Applied) == 0 {
					fmt.Fprintf(std.out, "store schema at version %d: nothing to apply\n", m.To)
					return nil
				}
				fmt.Fprintf(std.out, "store schema migrated from version %d to %d\n", m.From, m.To)
				return nil
			}
		},
	}
}

// migrateBolt migrates the bbolt file, which state.Open does.
func migrateBolt(cfg Config, std stdio) error {
	path := filepath.Join(cfg.Data, "rosterd.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no database at %s: %w", path, err)
	}
	db, err := state.Open(path, nil)
	if errors.Is(err, state.ErrLocked) {
		return fmt.Errorf("another rosterd is using %s (its database is locked): stop it first", cfg.Data)
	}
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Fprintf(std.out, "store %s at schema version %d\n", path, state.SchemaVersion)
	return nil
}

// validStore checks the store key: empty (the bbolt file) or a
// PostgreSQL URL. The message never quotes the value, which may hold a
// password.
func validStore(s string) error {
	if s == "" || isStoreURL(s) {
		return nil
	}
	return errors.New("is not a postgres:// URL (leave it empty for the bbolt file in the data directory)")
}
