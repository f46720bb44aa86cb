package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

// TestFileSecrets: a bbolt deployment keeps its host keys and API token
// in the data directory under the names `store copy` reads: generated
// once (0600, a .pub beside each key), the same afterwards, and a corrupt
// key is an error, never replaced.
func TestFileSecrets(t *testing.T) {
	data := t.TempDir()
	db, err := state.Open(filepath.Join(data, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := boltStore{DB: db, fileSecrets: fileSecrets{dir: data}}
	first, err := loadHostKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	second, err := loadHostKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range sftpd.HostKeyFiles {
		if a, b := ssh.FingerprintSHA256(first[i].PublicKey()), ssh.FingerprintSHA256(second[i].PublicKey()); a != b {
			t.Errorf("%s: %s, then %s; want the kept key", name, a, b)
		}
		path := filepath.Join(data, "host_keys", name)
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want a file 0600", name, st, err)
		}
		pub, err := os.ReadFile(path + ".pub")
		if err != nil || string(pub) != string(ssh.MarshalAuthorizedKey(first[i].PublicKey())) {
			t.Errorf("%s.pub = %q, %v; want the public key", name, pub, err)
		}
	}
	tok, err := loadAPIToken(s)
	if err != nil || len(tok) < 40 {
		t.Fatalf("loadAPIToken = %q, %v; want a generated token", tok, err)
	}
	if again, _ := loadAPIToken(s); again != tok {
		t.Errorf("loadAPIToken again = %q; want %q", again, tok)
	}
	if b, _ := os.ReadFile(filepath.Join(data, fileAPIToken)); strings.TrimSpace(string(b)) != tok {
		t.Errorf("%s = %q; want the token", fileAPIToken, b)
	}
	if _, _, err := s.LoadOrCreateSecret("host_key/../rosterd.db", nil); err == nil {
		t.Error("LoadOrCreateSecret(host_key/../rosterd.db) = nil error; want refused")
	}
	os.WriteFile(filepath.Join(data, "host_keys", sftpd.HostKeyRSA), []byte("garbage"), 0o600)
	if _, err := loadHostKeys(s); err == nil || !strings.Contains(err.Error(), sftpd.HostKeyRSA) {
		t.Errorf("loadHostKeys with a corrupt key = %v; want an error naming it", err)
	}
}
