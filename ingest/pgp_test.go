package ingest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// gnupg is GnuPG with a temporary home: the customer's side of an
// encrypted delivery.
type gnupg struct {
	t    testing.TB
	home string
}

func newGnupg(t testing.TB) *gnupg {
	t.Helper()
	lookPath(t, "gpg")
	home, err := os.MkdirTemp("", "gpg") // short: the agent's socket lives here
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	return &gnupg{t: t, home: home}
}

// gpg runs gpg unattended, as an HR system's delivery step does.
func (g *gnupg) gpg(args ...string) []byte {
	g.t.Helper()
	base := []string{"--homedir", g.home, "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}
	return run(g.t, g.home, nil, "gpg", append(base, args...)...)
}

// genKey makes a key pair (algo as gpg --quick-gen-key takes it, e.g.
// rsa3072, ed25519/cv25519) and returns its fingerprint.
func (g *gnupg) genKey(uid, algo, usage string) string {
	g.t.Helper()
	g.gpg("--quick-gen-key", uid, algo, usage, "never")
	for _, line := range strings.Split(string(g.gpg("--with-colons", "--list-keys", uid)), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %s", uid)
	return ""
}

// encrypt runs gpg with opts over in (saved as name) and returns what it
// writes.
func (g *gnupg) encrypt(name string, in []byte, opts ...string) []byte {
	g.t.Helper()
	src := filepath.Join(g.home, name)
	out := src + ".out"
	os.WriteFile(src, in, 0o600)
	args := append([]string{"--trust-model", "always", "--output", out}, opts...)
	g.gpg(append(args, src)...)
	b, err := os.ReadFile(out)
	if err != nil {
		g.t.Fatal(err)
	}
	os.Remove(out)
	return b
}

// pgpEnv is an organization with an OpenPGP key made by the pipeline,
// and a customer whose GnuPG has imported it and holds signing keys.
type pgpEnv struct {
	*env
	g          *gnupg
	orgFP      string // the organization's key, as gpg names it
	rsaSigner  string
	eccSigner  string
	otherKey   string // a key that is not the organization's
	signersPub []byte
}

func newPGPEnv(t *testing.T, algo string) *pgpEnv {
	t.Helper()
	g := newGnupg(t)
	e := newEnv(t, "acme", state.Settings{}, Defaults{Settle: 200 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	info, created, err := e.p.GeneratePGPKey("acme", algo, false)
	if err != nil || !created || len(info.Keys) != 1 {
		t.Fatalf("GeneratePGPKey = %+v, %v, %v", info, created, err)
	}
	pub := filepath.Join(g.home, "acme.asc")
	os.WriteFile(pub, []byte(info.Keys[0].PublicKey), 0o600)
	g.gpg("--import", pub)
	pe := &pgpEnv{env: e, g: g, orgFP: info.Keys[0].Fingerprint}
	pe.rsaSigner = g.genKey("HR Export <hr@acme.example>", "rsa3072", "sign")
	pe.eccSigner = g.genKey("Workday Integration <workday@acme.example>", "ed25519", "sign")
	pe.otherKey = g.genKey("Someone Else <else@example.com>", "default", "default")
	pe.signersPub = g.gpg("--armor", "--export", pe.rsaSigner, pe.eccSigner)
	return pe
}

func (pe *pgpEnv) opts() decodeOpts {
	o, err := pe.db.Org("acme")
	if err != nil {
		pe.t.Fatal(err)
	}
	return decodeOpts{pgp: pe.p.pgpSettings("acme", o.Settings)}
}

func (pe *pgpEnv) setRequire(on bool) {
	if _, err := pe.db.UpdateOrg("acme", func(o *state.Org) error { o.Settings.RequireSignature = on; return nil }); err != nil {
		pe.t.Fatal(err)
	}
}

// TestPGPDecrypt encrypts users.csv with GnuPG the ways HR systems'
// deliveries do (Workday: binary, compressed, often signed; MoveIT and
// scripts: armoured; with and without compression; RSA and ECC keys on
// both sides) and checks that each decrypts to the same text, and that
// the description names the key and the signer.
func TestPGPDecrypt(t *testing.T) {
	for _, orgAlgo := range []string{"rsa", "ecc"} {
		t.Run(orgAlgo, func(t *testing.T) {
			pe := newPGPEnv(t, orgAlgo)
			if _, err := pe.p.AddPGPSigners("acme", pe.signersPub); err != nil {
				t.Fatal(err)
			}
			to := []string{"--recipient", pe.orgFP}
			tests := []struct {
				name, file string
				opts       []string
				signer     string
			}{
				{"workday binary zip-compressed signed", "users.csv.gpg", []string{"--compress-algo", "zip", "-z", "6", "--cipher-algo", "AES256", "--local-user", pe.rsaSigner, "--sign", "--encrypt"}, "HR Export"},
				{"binary uncompressed", "users.csv.pgp", []string{"-z", "0", "--encrypt"}, ""},
				{"armoured zlib", "users.csv.asc", []string{"--armor", "--compress-algo", "zlib", "--encrypt"}, ""},
				{"armoured signed ECC", "users.csv.asc", []string{"--armor", "--local-user", pe.eccSigner, "--sign", "--encrypt"}, "Workday Integration"},
				{"bzip2 signed uncompressed-armour name", "users.csv.gpg", []string{"--compress-algo", "bzip2", "--local-user", pe.eccSigner, "--sign", "--encrypt"}, "Workday Integration"},
				{"armoured under a .gpg name", "users.csv.gpg", []string{"--armor", "--encrypt"}, ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					data := pe.g.encrypt("users.csv", []byte(exportUsers), append(to, tt.opts...)...)
					text, ie, desc := decodeBytes(t, tt.file, data, pe.opts())
					if ie != nil {
						t.Fatalf("decode: %s: %s", ie.Code, ie.Message)
					}
					if string(text) != exportUsers {
						t.Errorf("decrypted %q; want %q", text, exportUsers)
					}
					if !strings.Contains(desc, "decrypted with key acme uploads (rosterd) ("+pe.orgFP+")") {
						t.Errorf("description %q does not name the organization's key %s", desc, pe.orgFP)
					}
					switch {
					case tt.signer != "" && !strings.Contains(desc, ", signed by "+tt.signer):
						t.Errorf("description %q does not name the signer %s", desc, tt.signer)
					case tt.signer == "" && !strings.HasSuffix(desc, ", not signed"):
						t.Errorf("description %q does not say the file is not signed", desc)
					}
				})
			}
		})
	}
}

// TestPGPRefusals checks the words an admin reads when an encrypted file
// cannot be used: each is a rejected file with a code, and a message that
// says what to do.
func TestPGPRefusals(t *testing.T) {
	pe := newPGPEnv(t, "rsa")
	to := []string{"--recipient", pe.orgFP}
	good := pe.g.encrypt("users.csv", []byte(exportUsers), append(to, "--encrypt")...)
	tampered := bytes.Clone(good)
	tampered[len(tampered)-30] ^= 0x40
	signedOnly := pe.g.encrypt("users.csv", []byte(exportUsers), "-z", "0", "--local-user", pe.rsaSigner, "--sign")
	i := bytes.Index(signedOnly, []byte("Ann,Lee"))
	if i < 0 {
		t.Fatal("the signed file does not hold the text in clear")
	}
	forged := bytes.Clone(signedOnly)
	forged[i] = 'X' // "Xnn": the signature no longer matches

	tests := []struct {
		name    string
		file    string
		data    []byte
		signers bool // the organization has signing keys
		require bool
		code    string
		msg     string
	}{
		{"encrypted to another key", "users.csv.gpg", pe.g.encrypt("users.csv", []byte(exportUsers), "--recipient", pe.otherKey, "--encrypt"), false, false,
			schema.CodeNotDecrypted, "users.csv.gpg is not encrypted to this organization's key: it is encrypted to key "},
		{"passphrase", "users.csv.gpg", pe.g.encrypt("users.csv", []byte(exportUsers), "--passphrase", "s3cret", "--symmetric"), false, false,
			schema.CodeNotDecrypted, "users.csv.gpg is encrypted with a passphrase (gpg --symmetric), not to the organization's key"},
		{"damaged", "users.csv.gpg", tampered, false, false, schema.CodeCorruptFile, "users.csv.gpg is damaged"},
		{"cut off", "users.csv.gpg", good[:len(good)/2], false, false, schema.CodeCorruptFile, "users.csv.gpg"},
		{"not encrypted at all", "users.csv.gpg", []byte(exportUsers), false, false, schema.CodeNotDecrypted,
			"users.csv.gpg is not an OpenPGP-encrypted file, or it is damaged"},
		{"empty", "users.csv.gpg", nil, false, false, schema.CodeCorruptFile, "users.csv.gpg ends too early"},
		{"unsigned but required", "users.csv.gpg", good, true, true, schema.CodeBadSignature,
			"users.csv.gpg is not signed, and the organization accepts only files signed by one of its signing keys (HR Export <hr@acme.example> ("},
		{"signed by an unknown key but required", "users.csv.gpg", pe.g.encrypt("users.csv", []byte(exportUsers), append(to, "--local-user", pe.otherKey, "--sign", "--encrypt")...), true, true,
			schema.CodeBadSignature, "which is not one of the organization's signing keys"},
		{"signature does not match", "users.csv.gpg", forged, true, false, schema.CodeBadSignature,
			"users.csv.gpg is signed by HR Export <hr@acme.example> (" + pe.rsaSigner + "), but the signature does not match the file"},
		{"clear-signed", "users.csv.asc", pe.g.encrypt("users.csv", []byte(exportUsers), "--local-user", pe.rsaSigner, "--clearsign"), false, false,
			schema.CodeUnsupportedFormat, "is a clear-signed text"},
		{"a key instead of a file", "users.csv.asc", pe.signersPub, false, false, schema.CodeNotDecrypted, "holds an OpenPGP key or signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(pe.p.pgpSettings("acme", state.Settings{}).signersFile)
			if tt.signers {
				if _, err := pe.p.AddPGPSigners("acme", pe.g.gpg("--armor", "--export", pe.rsaSigner)); err != nil {
					t.Fatal(err)
				}
			}
			pe.setRequire(tt.require)
			_, ie, desc := decodeBytes(t, tt.file, tt.data, pe.opts())
			if ie == nil {
				t.Fatalf("decoded without an error (%s); want %s", desc, tt.code)
			}
			if ie.Code != tt.code || !strings.Contains(ie.Message, tt.msg) {
				t.Errorf("InputError %s: %q;\nwant %s: %q", ie.Code, ie.Message, tt.code, tt.msg)
			}
			t.Logf("%s: %s", ie.Code, ie.Message)
		})
	}

	t.Run("no key yet", func(t *testing.T) {
		o := pe.opts()
		o.pgp.keyFile = filepath.Join(t.TempDir(), "private.asc")
		_, ie, _ := decodeBytes(t, "users.csv.gpg", good, o)
		if ie == nil || ie.Code != schema.CodeNotDecrypted || !strings.Contains(ie.Message, "the organization has no OpenPGP key yet: ask the operator to run `rosterd org pgp acme`") {
			t.Errorf("InputError = %+v; want not_decrypted naming rosterd org pgp", ie)
		}
	})
}

// TestPGPUploadEvents uploads an encrypted and signed users.csv and an
// armoured user_groups.csv to an organization that requires signatures:
// the batch is applied with the events the plain files give, and its
// report names the files inside, the key and the signer. An unsigned
// upload is then rejected with a report that says so.
func TestPGPUploadEvents(t *testing.T) {
	_, want, _ := uploadEvents(t, state.Settings{}, nil, map[string][]byte{"users.csv": []byte(exportUsers), "user_groups.csv": []byte(exportMembers)})

	pe := newPGPEnv(t, "ecc")
	if _, err := pe.p.AddPGPSigners("acme", pe.signersPub); err != nil {
		t.Fatal(err)
	}
	pe.setRequire(true)
	if _, err := pe.db.UpdateOrg("acme", func(o *state.Org) error { o.Settings.UsersPatterns = []string{"users_*.csv"}; return nil }); err != nil {
		t.Fatal(err)
	}
	to := []string{"--recipient", pe.orgFP, "--local-user", pe.rsaSigner, "--sign", "--encrypt"}
	// Both files are encrypted before either is uploaded: gpg can take
	// longer than the settle window on a loaded machine, and the two
	// uploads must make one batch.
	users := pe.g.encrypt("users.csv", []byte(exportUsers), to...)
	members := pe.g.encrypt("user_groups.csv", []byte(exportMembers), append([]string{"--armor"}, to...)...)
	pe.upload("users_20261122.csv.gpg", users)
	pe.upload("user_groups.csv.asc", members)
	b := pe.waitBatch("", 20*time.Second)
	if b.Status != state.BatchApplied {
		t.Fatalf("status %s (%s); want applied:\n%s", b.Status, b.Reason, pe.reportText(b))
	}
	if diff := cmp.Diff(want, pe.batchEvents(b.ID)); diff != "" {
		t.Errorf("events differ from the plain upload's (-plain +encrypted):\n%s", diff)
	}
	txt := pe.reportText(b)
	for _, w := range []string{
		"users_20261122.csv.gpg → users_20261122.csv (users)",
		"user_groups.csv.asc → user_groups.csv (user_groups)",
		"decrypted with key acme uploads (rosterd) (" + pe.orgFP + "), signed by HR Export <hr@acme.example> (" + pe.rsaSigner + ")",
	} {
		if !strings.Contains(txt, w) {
			t.Errorf("the report does not say %q:\n%s", w, txt)
		}
	}

	changed := strings.Replace(exportUsers, "Cy,Ng", "Cy,Nguyen", 1)
	pe.upload("users.csv.gpg", pe.g.encrypt("users.csv", []byte(changed), "--recipient", pe.orgFP, "--encrypt"))
	b2 := pe.waitBatch(b.ID, 20*time.Second)
	if b2.Status != state.BatchRejected || len(pe.batchEvents(b2.ID)) != 0 {
		t.Fatalf("unsigned upload: status %s; want rejected without events", b2.Status)
	}
	is := pe.reportIssues(b2)
	if len(is) != 1 || is[0].Code != schema.CodeBadSignature || is[0].File != "users.csv" {
		t.Errorf("issues %+v; want one bad_signature of users.csv", is)
	}
}

// TestPGPKeys checks the key operations: a key is made once (again only
// when rotated, and both then decrypt), stays private to the daemon, and
// signing keys are refused when they are private or cannot sign.
func TestPGPKeys(t *testing.T) {
	pe := newPGPEnv(t, "rsa")
	ps := pe.p.pgpSettings("acme", state.Settings{})
	st, err := os.Stat(ps.keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, %v; want mode 0600", st, err)
	}
	if dst, err := os.Stat(filepath.Dir(ps.keyFile)); err != nil || dst.Mode().Perm() != 0o700 {
		t.Errorf("key folder: %v, %v; want mode 0700", dst, err)
	}
	info, created, err := pe.p.GeneratePGPKey("acme", "rsa", false)
	if err != nil || created || len(info.Keys) != 1 || info.Keys[0].Fingerprint != pe.orgFP {
		t.Fatalf("second GeneratePGPKey = %+v, %v, %v; want the same key, not created", info, created, err)
	}
	old := pe.g.encrypt("users.csv", []byte(exportUsers), "--recipient", pe.orgFP, "--encrypt")
	info, created, err = pe.p.GeneratePGPKey("acme", "ecc", true)
	if err != nil || !created || len(info.Keys) != 2 || info.Keys[1].Fingerprint != pe.orgFP || info.Keys[0].Algorithm != "Curve25519 (Ed25519)" {
		t.Fatalf("rotated GeneratePGPKey = %+v, %v, %v; want a new ECC key first, the old one second", info, created, err)
	}
	if text, ie, _ := decodeBytes(t, "users.csv.gpg", old, pe.opts()); ie != nil || string(text) != exportUsers {
		t.Errorf("a file encrypted to the old key after rotation: %q, %+v", text, ie)
	}
	if _, err := pe.p.AddPGPSigners("acme", pe.g.gpg("--armor", "--export-secret-keys", pe.rsaSigner)); err == nil || !strings.Contains(err.Error(), "this is a private key") {
		t.Errorf("AddPGPSigners(private key) = %v; want refused", err)
	}
	if _, err := pe.p.AddPGPSigners("acme", []byte("ssh-ed25519 AAAA...")); err == nil {
		t.Error("AddPGPSigners(an SSH key) accepted")
	}
	added, err := pe.p.AddPGPSigners("acme", pe.signersPub)
	if err != nil || len(added) != 2 {
		t.Fatalf("AddPGPSigners = %+v, %v", added, err)
	}
	if err := pe.p.RemovePGPSigner("acme", strings.ToLower(pe.eccSigner)); err != nil {
		t.Fatal(err)
	}
	info, _ = pe.p.PGP("acme")
	if len(info.Signers) != 1 || info.Signers[0].Fingerprint != pe.rsaSigner || info.Signers[0].UserID != "HR Export <hr@acme.example>" {
		t.Errorf("signers after removal: %+v", info.Signers)
	}
	if err := pe.p.RemovePGPSigner("acme", pe.eccSigner); err == nil {
		t.Error("removing a missing signer succeeded")
	}
	if err := CheckPGPKeyFile(ps.keyFile); err != nil {
		t.Errorf("CheckPGPKeyFile(the generated key) = %v", err)
	}
	pubFile := filepath.Join(t.TempDir(), "pub.asc")
	os.WriteFile(pubFile, pe.signersPub, 0o600)
	if err := CheckPGPKeyFile(pubFile); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("CheckPGPKeyFile(public key) = %v", err)
	}
	locked := filepath.Join(t.TempDir(), "locked.asc")
	pe.g.gpg("--passphrase", "s3cret", "--quick-gen-key", "Locked <l@x>", "rsa2048", "default", "never")
	os.WriteFile(locked, pe.g.gpg("--passphrase", "s3cret", "--armor", "--export-secret-keys", "Locked <l@x>"), 0o600)
	if err := CheckPGPKeyFile(locked); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("CheckPGPKeyFile(passphrase-protected) = %v", err)
	}
	if err := CheckPGPKeyFile("relative.asc"); err == nil {
		t.Error("CheckPGPKeyFile(relative path) accepted")
	}
}

// TestPGPKeyAsksForCompression checks that GnuPG compresses a file it
// encrypts to the organization's key with its default options: CSV
// exports would otherwise travel at several times their size.
func TestPGPKeyAsksForCompression(t *testing.T) {
	pe := newPGPEnv(t, "ecc")
	big := []byte(exportUsers + strings.Repeat("E9,x@example.com,Xavier,Example,Sales\n", 2000))
	data := pe.g.encrypt("users.csv", big, "--recipient", pe.orgFP, "--encrypt")
	if len(data) > len(big)/4 {
		t.Errorf("gpg --encrypt made %d bytes of %d: not compressed", len(data), len(big))
	}
	if text, ie, _ := decodeBytes(t, "users.csv.gpg", data, pe.opts()); ie != nil || !bytes.Equal(text, big) {
		t.Errorf("decode: %+v, %d bytes", ie, len(text))
	}
}
