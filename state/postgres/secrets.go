package postgres

import (
	"bytes"
	"fmt"
)

// Secrets are what every instance of a fleet must share and bbolt
// deployments keep in files beside the database: the SSH host keys (so
// that a client sees the same host key whichever instance answers) and the
// API token. rosterd.secrets holds them by name ("host_key/ssh_host_ed25519_key",
// "api_token"); values are opaque bytes (a PEM private key, a token).
//
// Caveat: anyone who can read the table can impersonate the SFTP server
// and call the API; grant it to rosterd's role only.

// Secret returns the stored value of name, or state.ErrNotFound.
func (db *DB) Secret(name string) ([]byte, error) {
	ctx, cancel := db.op()
	defer cancel()
	var v []byte
	if err := db.pool.QueryRow(ctx, "SELECT value FROM rosterd.secrets WHERE name = $1", name).Scan(&v); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, notFound(err))
	}
	return v, nil
}

// LoadOrCreateSecret returns the stored value of name; when there is none
// it stores the value gen makes and returns it. Instances starting at once
// may each call gen, but only the first value stored is kept and all of
// them return it (created is true for that one only).
func (db *DB) LoadOrCreateSecret(name string, gen func() ([]byte, error)) (value []byte, created bool, err error) {
	v, err := db.Secret(name)
	if err == nil {
		return v, false, nil
	}
	if !isNotFound(err) {
		return nil, false, err
	}
	nv, err := gen()
	if err != nil {
		return nil, false, fmt.Errorf("make secret %s: %w", name, err)
	}
	ctx, cancel := db.op()
	defer cancel()
	// ON CONFLICT DO UPDATE with an unchanged value returns the row that
	// won, whether this insert or another instance's.
	err = db.pool.QueryRow(ctx, `INSERT INTO rosterd.secrets (name, value, created_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET value = rosterd.secrets.value RETURNING value`, name, nv, db.stamp()).Scan(&v)
	if err != nil {
		return nil, false, fmt.Errorf("store secret %s: %w", name, err)
	}
	return v, bytes.Equal(v, nv), nil
}
