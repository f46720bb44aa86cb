package sftpd

import (
	"context"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Reasons of a session.revoked record.
const (
	revokedKey     = "key removed"
	revokedOrg     = "organization removed"
	revokedRecheck = "key no longer authorized"
)

// login is one authenticated connection, as Revoke and the key re-check
// see it. It is registered in Server.logins from the end of the handshake
// until the connection ends.
type login struct {
	c     *conn
	key   ssh.PublicKey // the key the connection authenticated with
	close func() error  // closes the SSH connection
	once  sync.Once
}

// revoke closes the connection and records why, once.
func (l *login) revoke(reason string) {
	l.once.Do(func() {
		l.c.log.Warn("session revoked", "event", EventSessionRevoked, "reason", reason)
		l.c.audit(AuditRecord{Event: EventSessionRevoked, Reason: reason})
		l.close()
	})
}

// Revoke closes, at once, every connection of org that authenticated with
// the key whose SHA256 fingerprint is keyFP, or every connection of org
// when keyFP is empty, and returns how many it closed. Call it after the
// key or organization is gone from the Keys store: a connection that
// authenticates meanwhile checks its key again once it is registered, so
// none slips through. Uploads in flight on those connections are
// discarded, as with any dropped connection (SPEC §3).
//
// Revoke reaches the connections of this Server only. Other instances
// sharing the Keys store close theirs at their next key re-check
// (Limits.KeyRecheck).
func (s *Server) Revoke(org, keyFP string) int {
	reason := revokedKey
	if keyFP == "" {
		reason = revokedOrg
	}
	s.mu.Lock()
	var hit []*login
	for l := range s.logins {
		if l.c.org == org && (keyFP == "" || l.c.keyFP == keyFP) {
			hit = append(hit, l)
		}
	}
	s.mu.Unlock()
	for _, l := range hit {
		l.revoke(reason)
	}
	return len(hit)
}

// register adds an authenticated connection to the ones Revoke sees, then
// checks its key once more, which closes the race with a removal that
// came between the authentication and the registration. It returns false
// when the key is no longer authorized (the connection is then closed).
func (s *Server) register(l *login) bool {
	s.mu.Lock()
	s.logins[l] = struct{}{}
	s.mu.Unlock()
	if err := s.authorize(l.c.org, l.key); err != nil {
		l.revoke(revokedRecheck)
		return false
	}
	return true
}

func (s *Server) unregister(l *login) {
	s.mu.Lock()
	delete(s.logins, l)
	s.mu.Unlock()
}

// recheck asks Keys again every interval whether the connection's key
// still belongs to its organization, and closes the connection when it
// does not, until ctx ends. This is how a removal made through another
// instance sharing the store reaches this one. Cost: one Keys.Authorize
// per open connection per interval.
func (s *Server) recheck(ctx context.Context, l *login, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.authorize(l.c.org, l.key); err != nil {
				if ctx.Err() == nil {
					l.c.log.Info("key re-check refused the session's key", "err", err)
					l.revoke(revokedRecheck)
				}
				return
			}
		}
	}
}
