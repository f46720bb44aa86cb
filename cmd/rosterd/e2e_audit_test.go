package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// auditList is the answer of GET /v1/organizations/{org}/audit.
type auditList struct {
	Data []struct {
		ID             string   `json:"id"`
		OrganizationID string   `json:"organization_id"`
		Event          string   `json:"event"`
		Session        string   `json:"session"`
		KeyFP          string   `json:"key_fingerprint"`
		RemoteAddr     string   `json:"remote_addr"`
		File           string   `json:"file"`
		Target         string   `json:"target"`
		Bytes          *int64   `json:"bytes"`
		SHA256         string   `json:"sha256"`
		DurationMS     *float64 `json:"duration_ms"`
	} `json:"data"`
	ListMetadata struct {
		After *string `json:"after"`
	} `json:"list_metadata"`
}

// TestAuditTrailOverSFTP uploads, renames and removes with OpenSSH sftp and
// reads the trail back from the API (SPEC §3: kept for the API).
func TestAuditTrailOverSFTP(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	key := newClientKey(t)
	if out, code := d.CLI("", "org", "add", "acme", "--key", key+".pub"); code != 0 {
		t.Fatalf("org add acme = %d %q", code, out)
	}
	if out, code := d.CLI("", "org", "add", "globex"); code != 0 {
		t.Fatalf("org add globex = %d %q", code, out)
	}
	var keys struct {
		Data []struct{ Fingerprint string }
	}
	d.API("GET", "/v1/organizations/acme/keys", nil, &keys)
	if len(keys.Data) != 1 {
		t.Fatalf("acme keys = %+v; want one", keys)
	}

	data := "user_id,email,first_name,last_name\nE1,a@example.com,Ada,Lovelace\n"
	src := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(src, []byte(data), 0o644)
	script := "put " + src + " users.csv.filepart\nrename users.csv.filepart users.csv\nput " + src + " scratch.csv\nrm scratch.csv\n"
	if out, ok := sftpBatch(t, d, key, "acme", script); !ok {
		t.Fatalf("sftp failed:\n%s\n%s", out, d.Logs())
	}

	var got auditList
	waitFor(t, 15*time.Second, "session.end in acme's audit trail", func() bool {
		got = auditList{}
		d.API("GET", "/v1/organizations/acme/audit?order=asc", nil, &got)
		return len(got.Data) > 0 && got.Data[len(got.Data)-1].Event == "session.end"
	})
	var events []string
	for _, r := range got.Data {
		events = append(events, r.Event+" "+r.File+" "+r.Target)
		if r.OrganizationID != "acme" || r.Session == "" || r.Session != got.Data[0].Session ||
			r.KeyFP != keys.Data[0].Fingerprint || !strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") {
			t.Errorf("record %+v; want acme's one session with key %s from loopback", r, keys.Data[0].Fingerprint)
		}
	}
	want := []string{
		"session.start  ",
		"upload users.csv.filepart ",
		"rename users.csv.filepart users.csv",
		"upload scratch.csv ",
		"remove scratch.csv ",
		"session.end  ",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("acme's audit trail:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	sum := sha256.Sum256([]byte(data))
	up := got.Data[1]
	if up.SHA256 != hex.EncodeToString(sum[:]) || up.Bytes == nil || *up.Bytes != int64(len(data)) || up.DurationMS == nil {
		t.Errorf("upload record = %+v; want sha256 %x, %d bytes and a duration", up, sum, len(data))
	}
	if rn := got.Data[2]; rn.Bytes == nil || *rn.Bytes != int64(len(data)) {
		t.Errorf("rename record = %+v; want %d bytes", rn, len(data))
	}

	// Newest first by default, paged with the cursor.
	var first, second auditList
	d.API("GET", "/v1/organizations/acme/audit?limit=4", nil, &first)
	if len(first.Data) != 4 || first.Data[0].Event != "session.end" || first.ListMetadata.After == nil {
		t.Fatalf("first page = %+v; want 4 records from session.end and a cursor", first)
	}
	d.API("GET", "/v1/organizations/acme/audit?limit=4&after="+*first.ListMetadata.After, nil, &second)
	if len(second.Data) != 2 || second.Data[1].Event != "session.start" || second.ListMetadata.After != nil {
		t.Errorf("second page = %+v; want the last 2 records ending with session.start, no cursor", second)
	}

	var other auditList
	if code := d.API("GET", "/v1/organizations/globex/audit", nil, &other); code != 200 || len(other.Data) != 0 {
		t.Errorf("globex audit = %d %+v; want 200 and nothing", code, other.Data)
	}
	if code := d.API("GET", "/v1/organizations/nope/audit", nil, nil); code != 404 {
		t.Errorf("audit of an unknown organization = %d; want 404", code)
	}
}
