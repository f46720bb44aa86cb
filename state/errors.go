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
	// ErrLinkExpired and ErrLinkRevoked are returned when a setup link
	// past its expiry or revoked is used.
	ErrLinkExpired = errors.New("setup link expired")
	ErrLinkRevoked = errors.New("setup link revoked")
	// ErrOrgGone is returned when a setup link's organization was removed.
	ErrOrgGone = errors.New("organization removed")
)
