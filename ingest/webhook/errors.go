package webhook

import "errors"

var (
	// ErrBadSecret is returned by ParseSecret for a malformed secret.
	ErrBadSecret = errors.New("invalid webhook secret")
	// ErrBadEndpoint is returned by New and SetEndpoints for an endpoint
	// with a bad URL, a missing secret or a repeated id.
	ErrBadEndpoint = errors.New("invalid webhook endpoint")
	// ErrNoEndpoint is returned by Redeliver when no endpoint matches.
	ErrNoEndpoint = errors.New("no such webhook endpoint")
)
