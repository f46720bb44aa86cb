package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// PurgeEvents is state.DB.PurgeEvents (SPEC §7, retention): it deletes
// the events committed before before, organization by organization, in
// one transaction per batch, except those after the id keepAfter gives
// for an organization (a webhook endpoint has not delivered or failed
// them yet). A batch's copies of users and groups and its commit row go
// with its last event. Failed deliveries of purged events are forgotten
// too. It returns the number of events deleted, and stops early with
// ctx's error.
func (db *DB) PurgeEvents(ctx context.Context, before time.Time, keepAfter func(org string) (after string, ok bool)) (int, error) {
	cutoff := state.EventIDAt(before)
	var orgs []string
	{
		octx, cancel := db.op()
		rows, err := db.pool.Query(octx, "SELECT DISTINCT org FROM rosterd.commits WHERE first_id < $1 ORDER BY org", cutoff)
		if err == nil {
			orgs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		cancel()
		if err != nil {
			return 0, fmt.Errorf("purge events: %w", err)
		}
	}
	total := 0
	for _, org := range orgs {
		limit := cutoff
		if after, ok := keepAfter(org); ok && after < cutoff {
			// Keep ids > after: delete ids < after+"\x00", i.e. <= after.
			limit = after + "\x00"
		}
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			n, progress, err := db.purgeOldest(org, limit)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge events of %s: %w", org, err)
			}
			if !progress {
				break
			}
		}
	}
	octx, cancel := db.op()
	defer cancel()
	if _, err := db.pool.Exec(octx, "DELETE FROM rosterd.delivery_failed WHERE event_id < $1", cutoff); err != nil {
		return total, fmt.Errorf("purge events: %w", err)
	}
	return total, nil
}

// purgeOldest deletes, in one transaction, org's oldest commit's events
// with ids below limit: the whole commit when all its remaining events
// are. progress is false when there was nothing to delete.
func (db *DB) purgeOldest(org, limit string) (n int, progress bool, err error) {
	err = db.tx(func(ctx context.Context, tx pgx.Tx) error {
		c, err := scanCommit(tx.QueryRow(ctx, "SELECT "+commitColumns+` FROM rosterd.commits WHERE org = $1
ORDER BY first_id LIMIT 1 FOR UPDATE`, org))
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		// hi: the first index whose id is not below limit.
		lo, hi := c.lo, c.count
		for lo < hi {
			m := lo + (hi-lo)/2
			if c.id(m) < limit {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if hi <= c.lo {
			return nil
		}
		progress = true
		n = int(hi - c.lo)
		if hi == c.count {
			for _, table := range []string{"event_records", "event_users", "event_groups"} {
				if _, err := tx.Exec(ctx, "DELETE FROM rosterd."+table+" WHERE org = $1 AND batch_id = $2", c.org, c.batch); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, "DELETE FROM rosterd.commits WHERE seq = $1", int64(c.seq))
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM rosterd.event_records WHERE org = $1 AND batch_id = $2 AND idx < $3", c.org, c.batch, int64(hi))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE rosterd.commits SET lo = $2 WHERE seq = $1", int64(c.seq), int64(hi))
		return err
	})
	return n, progress, err
}
