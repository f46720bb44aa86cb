package state

import "errors"

var (
	// ErrNotFound is returned when an organization, key, batch or event does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when creating something that already exists.
	ErrExists = errors.New("already exists")
	// ErrNewerSchema is returned by Open when the database was written by a
	// newer rosterd.
	ErrNewerSchema = errors.New("database written by a newer rosterd")
	// ErrLocked is returned by Open when another process holds the
	// database open: bbolt takes an exclusive file lock for the life of
	// the DB, so two daemons can never share one data directory.
	ErrLocked = errors.New("database is in use by another process")
	// ErrLinkExpired and ErrLinkRevoked are returned when a setup link
	// past its expiry or revoked is used.
	ErrLinkExpired = errors.New("setup link expired")
	ErrLinkRevoked = errors.New("setup link revoked")
	// ErrOrgGone is returned when a setup link's organization was removed.
	ErrOrgGone = errors.New("organization removed")
)
