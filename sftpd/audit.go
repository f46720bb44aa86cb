package sftpd

import (
	"fmt"
	"strings"
	"time"
)

// Audit receives the audit trail (SPEC §3: each session, upload, rename,
// removal and refused request is logged and kept for the API). Record is
// called on the SFTP path, from many connections at once, with every
// record the audit log line is written for; it must not block (buffer the
// record and return, or drop it) and must not keep r's fields beyond what
// it copies. Records carry the organization they belong to; address-level
// events without one (a banned address, a failed handshake, the ban
// itself) are only logged.
type Audit interface {
	Record(r AuditRecord)
}

// The Event values of AuditRecord, the same as the "event" key of the log.
const (
	EventSessionStart    = "session.start"    // a connection authenticated
	EventSessionEnd      = "session.end"      // it ended; Duration is its length
	EventUpload          = "upload"           // a file was put in place; Bytes, SHA256, Duration
	EventUploadDiscarded = "upload.discarded" // an upload was cut off or refused; Reason
	EventRename          = "rename"           // File was renamed onto Target
	EventRemove          = "remove"           // File was removed
	EventRefused         = "refused"          // a request was refused; Reason
	EventAuthFailure     = "auth.failure"     // a key or method was refused for Org; Reason
	EventSessionRevoked  = "session.revoked"  // the session's key or organization was removed and it was closed; Reason
)

// AuditRecord is one entry of the audit trail. Fields that do not apply
// to the event are zero.
type AuditRecord struct {
	Time       time.Time
	Event      string // one of the Event constants
	Org        string
	RemoteAddr string        // client address and port
	KeyFP      string        // SHA256 fingerprint of the key the session logged in with, or that was refused
	Session    string        // the session id of the log lines; empty for auth failures
	File       string        // name in the organization folder (for a rename, the old name)
	Target     string        // the new name of a rename
	Bytes      int64         // size of the file uploaded, renamed or removed
	SHA256     string        // hex SHA-256 of an upload
	Duration   time.Duration // of an upload or a session
	Reason     string        // why an upload was discarded, a request refused or a login failed
}

// audit sends r to the Audit sink, if any.
func (s *Server) audit(r AuditRecord) {
	if s.cfg.Audit == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	s.cfg.Audit.Record(r)
}

// audit records r for this connection's organization and session.
func (c *conn) audit(r AuditRecord) {
	r.Org, r.Session, r.RemoteAddr, r.KeyFP = c.org, c.session, c.remote, c.keyFP
	c.srv.audit(r)
}

// refuse counts, logs and records a refused request of this connection.
// args are log key-value pairs; "file" becomes the record's File and the
// others are appended to its Reason ("rename err=...").
func (c *conn) refuse(reason string, args ...any) {
	c.srv.refuse(c.log, reason, args...)
	r := AuditRecord{Event: EventRefused}
	var b strings.Builder
	b.WriteString(reason)
	for i := 0; i+1 < len(args); i += 2 {
		k := fmt.Sprint(args[i])
		if k == "file" {
			r.File = fmt.Sprint(args[i+1])
			continue
		}
		fmt.Fprintf(&b, " %s=%v", k, args[i+1])
	}
	r.Reason = b.String()
	c.audit(r)
}

// auditAuthFailure records a refused login under the organization it
// named. A user name that is not a valid organization name is only
// logged: it names no organization whose trail could hold it.
func (s *Server) auditAuthFailure(org, remote, keyFP, reason string) {
	if !ValidOrgName(org) {
		return
	}
	s.audit(AuditRecord{Event: EventAuthFailure, Org: org, RemoteAddr: remote, KeyFP: keyFP, Reason: reason})
}
