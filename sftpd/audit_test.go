package sftpd

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// auditRecorder is an Audit that keeps every record.
type auditRecorder struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (a *auditRecorder) Record(r AuditRecord) {
	a.mu.Lock()
	a.recs = append(a.recs, r)
	a.mu.Unlock()
}

func (a *auditRecorder) get() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuditRecord(nil), a.recs...)
}

func (a *auditRecorder) find(event string) []AuditRecord {
	var out []AuditRecord
	for _, r := range a.get() {
		if r.Event == event {
			out = append(out, r)
		}
	}
	return out
}

// TestAuditRecords drives OpenSSH sftp and checks that each audit log line
// of SPEC §3 also reaches Config.Audit with the organization, session,
// address and key fingerprint.
func TestAuditRecords(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) { c.Audit = rec })
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	local := t.TempDir()
	users := "user_id,email,first_name,last_name\n1,a@example.com,A,B\n"
	writeFile(t, filepath.Join(local, "users.csv"), users)
	batch := strings.NewReplacer("LOCAL", local).Replace(`
put LOCAL/users.csv users.tmp
rename users.tmp users.csv
rm users.csv
-put LOCAL/users.csv reports/x.csv
`)
	if out, err := sftptest.SFTP(t, cfg, batch); err != nil {
		t.Fatalf("sftp -b: %v\n%s", err, out)
	}
	waitFor(t, "session end record", func() bool { return len(rec.find(EventSessionEnd)) == 1 })

	fp := Fingerprint(k.Signer.PublicKey())
	all := rec.get()
	session := all[0].Session
	for _, r := range all {
		if r.Org != "acme" || r.KeyFP != fp || r.Session != session || session == "" ||
			!strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") || r.Time.IsZero() {
			t.Errorf("record %+v; want org acme, key %s, session %q, a loopback address and a time", r, fp, session)
		}
	}
	var events []string
	for _, r := range all {
		events = append(events, r.Event)
	}
	want := []string{EventSessionStart, EventUpload, EventRename, EventRemove, EventRefused, EventSessionEnd}
	if strings.Join(events, " ") != strings.Join(want, " ") {
		t.Errorf("events = %q; want %q", events, want)
	}
	sum := sha256.Sum256([]byte(users))
	if up := rec.find(EventUpload); len(up) != 1 || up[0].File != "users.tmp" || up[0].Bytes != int64(len(users)) ||
		up[0].SHA256 != hex.EncodeToString(sum[:]) || up[0].Duration <= 0 {
		t.Errorf("upload records = %+v; want users.tmp, %d bytes, its SHA-256 and a duration", up, len(users))
	}
	if rn := rec.find(EventRename); len(rn) != 1 || rn[0].File != "users.tmp" || rn[0].Target != "users.csv" || rn[0].Bytes != int64(len(users)) {
		t.Errorf("rename records = %+v; want users.tmp -> users.csv", rn)
	}
	if rm := rec.find(EventRemove); len(rm) != 1 || rm[0].File != "users.csv" {
		t.Errorf("remove records = %+v; want users.csv", rm)
	}
	if rf := rec.find(EventRefused); len(rf) != 1 || rf[0].File != "reports/x.csv" || !strings.HasPrefix(rf[0].Reason, "write err=") {
		t.Errorf("refused records = %+v; want the write to reports/x.csv", rf)
	}
	if end := rec.find(EventSessionEnd); end[0].Duration <= 0 {
		t.Errorf("session end = %+v; want a duration", end[0])
	}
}

// TestAuditAuthFailure checks that a refused key is recorded under the
// organization it named, and that a user name that is no organization
// name is not recorded at all.
func TestAuditAuthFailure(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) { c.Audit = rec })
	e.addOrg(t, "acme")
	other := sftptest.GenerateKey(t, t.TempDir(), "other")
	if c, err := e.dial("acme", ssh.PublicKeys(other.Signer)); err == nil {
		c.Close()
		t.Fatal("login with an unknown key succeeded")
	}
	if c, err := e.dial("Not_An_Org", ssh.PublicKeys(other.Signer)); err == nil {
		c.Close()
		t.Fatal("login as an invalid user name succeeded")
	}
	fails := rec.find(EventAuthFailure)
	if len(fails) != 1 || fails[0].Org != "acme" || fails[0].KeyFP != Fingerprint(other.Signer.PublicKey()) ||
		fails[0].Reason == "" || fails[0].Session != "" {
		t.Errorf("auth failure records = %+v; want one for acme with the offered key", fails)
	}
	if n := len(rec.get()); n != 1 {
		t.Errorf("records = %+v; want only the auth failure", rec.get())
	}
}
