package state

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The reads below exist for copying a bbolt store to another store
// (rosterd store copy): what no consumer needs but a copy must carry.

// EventClock returns the sequence and time (Unix ms) of the last commit
// of events, 0 and 0 before the first. A store that takes the events over
// must draw later ids than these, even when retention removed every
// event: an endpoint's cursor may stand at any id drawn.
func (db *DB) EventClock() (seq, ms uint64, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		seq, ms = getU64(meta.Get(keyEventSeq)), getU64(meta.Get(keyEventMs))
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("event clock: %w", err)
	}
	return seq, ms, nil
}

// AllSetupLinks returns every setup link, by token hash, whatever its
// organization (a link may name one it will create).
func (db *DB) AllSetupLinks() ([]SetupLink, error) {
	var out []SetupLink
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return forEachSetupLink(tx, func(_ []byte, l SetupLink) error {
			out = append(out, l)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list setup links: %w", err)
	}
	return out, nil
}
