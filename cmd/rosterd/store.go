package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// storeCommand groups the commands that move a deployment's state from
// one store to another (SPEC §11).
func storeCommand() *command {
	return &command{
		name: "store", summary: "move a deployment's state from the bbolt file to PostgreSQL",
		about: "Commands that work on the stores themselves, with the daemon stopped: so far,\n" +
			"copying a bbolt deployment into PostgreSQL, where several instances share it.",
		example: "rosterd store copy --from /var/lib/rosterd --to postgres://rosterd@db.example.com/rosterd",
		subs: []*command{{
			name: "store copy", summary: "copy a stopped daemon's bbolt store into an empty PostgreSQL database, verified",
			about: "Copy everything the bbolt file DIR/rosterd.db holds into an empty PostgreSQL\n" +
				"database (migrated first): organizations and settings, keys, setup links,\n" +
				"audit trail, batches and reports, completions, snapshots, events with their\n" +
				"ids, webhook cursors and failed deliveries, and DIR's host keys and API token,\n" +
				"which a fleet shares. It runs in one transaction (all or nothing), then reads\n" +
				"both stores back and compares each organization's content, area by area\n" +
				"(counts and SHA-256); any difference fails the command. Stop the daemon\n" +
				"first: the bbolt file is locked while it runs.",
			example: "rosterd store copy --from /var/lib/rosterd --to postgres://rosterd@db.example.com/rosterd\n" +
				"ROSTERD_STORE=postgres://rosterd@db/rosterd rosterd store copy --from /var/lib/rosterd",
			setup: func(fs *flag.FlagSet) action {
				from := fs.String("from", "", "data `DIR` of the bbolt store to copy (required)")
				to := fs.String("to", "", "the PostgreSQL store, a postgres:// `URL` ($ROSTERD_STORE)")
				return func(ctx context.Context, std stdio, args []string) error {
					url := *to
					if url == "" {
						url = os.Getenv("ROSTERD_STORE")
					}
					switch {
					case *from == "":
						return &ExitCodeError{Code: 2, Err: errors.New("store copy: --from DIR is required")}
					case url == "":
						return &ExitCodeError{Code: 2, Err: errors.New("store copy: --to URL (or ROSTERD_STORE) is required")}
					}
					if err := validStore(url); err != nil {
						return &ExitCodeError{Code: 2, Err: fmt.Errorf("store copy: --to %w", err)}
					}
					return storeCopy(ctx, std.out, *from, url)
				}
			},
		}},
	}
}

// storeCopy copies the bbolt store of data into the PostgreSQL store at
// url and verifies the copy.
func storeCopy(ctx context.Context, out io.Writer, data, url string) error {
	path := filepath.Join(data, "rosterd.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store copy: no database at %s: %w", path, err)
	}
	src, err := state.Open(path, nil)
	if errors.Is(err, state.ErrLocked) {
		return fmt.Errorf("store copy: another rosterd is using %s (its database is locked): stop it first", data)
	}
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer src.Close()
	secrets, err := readSecrets(data)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	dst, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer dst.Close()
	rep, err := dst.Import(ctx, src, secrets)
	if errors.Is(err, postgres.ErrNotEmpty) {
		return errors.New("store copy: the PostgreSQL store is not empty: copy into a new database")
	}
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	fmt.Fprintf(out, "copied %s into PostgreSQL\n", countsLine(rep.Counts,
		"organization", "keys", "setup_links", "audit", "batches", "completions", "users", "groups", "memberships",
		"events", "endpoints", "delivery", "secrets"))
	var differ []string
	for _, org := range rep.Orgs {
		want, err := state.ContentHash(src, org)
		if err != nil {
			return fmt.Errorf("store copy: verify: %w", err)
		}
		got, err := state.ContentHash(dst, org)
		if err != nil {
			return fmt.Errorf("store copy: verify: %w", err)
		}
		var bad []string
		for _, area := range state.ContentAreas {
			if want[area] != got[area] {
				bad = append(bad, fmt.Sprintf("%s (%d in bbolt, %d in PostgreSQL)", area, want[area].Count, got[area].Count))
			}
		}
		if len(bad) > 0 {
			differ = append(differ, org+": "+strings.Join(bad, ", "))
			fmt.Fprintf(out, "%s: DIFFERS in %s\n", org, strings.Join(bad, ", "))
			continue
		}
		n := map[string]int{}
		for area, h := range want {
			n[area] = h.Count
		}
		fmt.Fprintf(out, "%s: verified (%s)\n", org, countsLine(n, "users", "groups", "memberships", "batches", "events", "audit"))
	}
	if err := sameEndpoints(src, dst); err != nil {
		differ = append(differ, err.Error())
		fmt.Fprintf(out, "endpoints: DIFFER: %v\n", err)
	}
	if len(differ) > 0 {
		return fmt.Errorf("store copy: the copy differs from the bbolt store in %d place(s); do not run on it: drop the database and copy again, or report it", len(differ))
	}
	fmt.Fprintf(out, "verified: %d organization(s) and the webhook endpoints match\n", len(rep.Orgs))
	return nil
}

// readSecrets reads what a bbolt deployment keeps in files beside its
// database and a fleet shares through the store: the SSH host keys
// (DATA/host_keys/NAME as host_key/NAME) and the API token
// (DATA/api_token as api_token). Either may be missing.
func readSecrets(data string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if b, err := os.ReadFile(filepath.Join(data, fileAPIToken)); err == nil {
		out["api_token"] = b
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(data, "host_keys"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(data, "host_keys", e.Name()))
		if err != nil {
			return nil, err
		}
		out["host_key/"+e.Name()] = b
	}
	return out, nil
}

// sameEndpoints compares the webhook endpoints of both stores.
func sameEndpoints(src *state.DB, dst *postgres.DB) error {
	a, err := src.Endpoints()
	if err != nil {
		return err
	}
	b, err := dst.Endpoints()
	if err != nil {
		return err
	}
	key := func(eps []state.EndpointState) []string {
		var out []string
		for _, e := range eps {
			out = append(out, fmt.Sprintf("%s %s %s %s %v %s %s", e.ID, e.URL, e.Start, e.FirstSeen.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z"),
				e.Disabled, e.DisabledAt.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z"), e.DisabledReason))
		}
		return out
	}
	ka, kb := key(a), key(b)
	if strings.Join(ka, "\n") != strings.Join(kb, "\n") {
		return fmt.Errorf("%d endpoint(s) in bbolt, %d in PostgreSQL, or their fields differ", len(ka), len(kb))
	}
	return nil
}

// countsLine says counts of areas in order: "2 organizations, 3 users".
func countsLine(n map[string]int, areas ...string) string {
	var parts []string
	for _, a := range areas {
		label := strings.ReplaceAll(a, "_", " ")
		switch a {
		case "organization":
			label = "organizations"
		case "audit":
			label = "audit records"
		case "delivery":
			label = "cursors and failed deliveries"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n[a], label))
	}
	return strings.Join(parts, ", ")
}
