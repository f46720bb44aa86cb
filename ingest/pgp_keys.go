package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// An organization's OpenPGP keys live in KeysRoot/ORG/ (Config.KeysRoot,
// by default pgp/ beside the organizations' folders in the data
// directory), private to the daemon:
//
//	private.asc   its key pairs (0600), armoured, newest last; made by
//	              GeneratePGPKey (`rosterd org pgp ORG`); the daemon
//	              decrypts unattended, so they have no passphrase
//	signers.asc   the customer's public signing keys (AddPGPSigners)
//
// An operator who keeps the private key elsewhere sets the organization's
// pgp_key_file setting to its path instead (CheckPGPKeyFile). Rotating
// adds a key pair: files encrypted to an older key still decrypt until
// the old key is removed from private.asc by hand. Removing an
// organization leaves its keys, as it leaves its archive: the archived
// encrypted uploads need them.

// Errors of the OpenPGP key operations.
var (
	// ErrBadPGPKey is returned for a key that cannot be used; its message
	// says why.
	ErrBadPGPKey = errors.New("unusable OpenPGP key")
	// ErrPGPKeyFile is returned by GeneratePGPKey when the organization's
	// key is the operator's file (the pgp_key_file setting).
	ErrPGPKeyFile = errors.New("the organization's OpenPGP key is kept in a file the operator manages (setting pgp_key_file)")
)

// maxKeyFile bounds a key file or an uploaded public key.
const maxKeyFile = 1 << 20

// pgpSettings are an organization's OpenPGP settings for one batch.
type pgpSettings struct {
	org         string
	keyFile     string // its key pairs
	operatorKey bool   // keyFile is the pgp_key_file setting's
	signersFile string
	require     bool
}

// pgpSettings resolves where org's keys are.
func (p *Pipeline) pgpSettings(org string, st state.Settings) pgpSettings {
	dir := filepath.Join(p.keysRoot(), org)
	ps := pgpSettings{org: org, keyFile: filepath.Join(dir, "private.asc"), signersFile: filepath.Join(dir, "signers.asc"), require: st.RequireSignature}
	if st.PGPKeyFile != "" {
		ps.keyFile, ps.operatorKey = st.PGPKeyFile, true
	}
	return ps
}

func (p *Pipeline) keysRoot() string {
	if p.cfg.KeysRoot != "" {
		return p.cfg.KeysRoot
	}
	return filepath.Join(filepath.Dir(filepath.Clean(p.cfg.OrgsRoot)), "pgp")
}

// fingerprint (string) effective string: what of the OpenPGP settings
// decides a batch's outcome, for the identical-upload check.
func (ps pgpSettings) String() string {
	return fmt.Sprintf("pgp:%s|%t|%s", ps.keyFile, ps.require, fileStamp(ps.signersFile)+fileStamp(ps.keyFile))
}

func fileStamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "-"
	}
	return fmt.Sprintf("%d.%d", st.Size(), st.ModTime().UnixNano())
}

// decryptionKeys reads the organization's key pairs: none when it has no
// key yet. A key file that cannot be used is the file's problem as the
// admin sees it (an *schema.InputError without server paths).
func (ps pgpSettings) decryptionKeys() (openpgp.EntityList, error) {
	el, err := readKeyFile(ps.keyFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && !ps.operatorKey:
		return nil, nil
	case err != nil:
		return nil, &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
			"the organization's OpenPGP key cannot be read, so encrypted files cannot be decrypted: ask the operator to check it (%s)", keyErrText(err))}
	}
	for _, e := range el {
		if e.PrivateKey == nil {
			return nil, &schema.InputError{Code: schema.CodeNotDecrypted, Message: "the organization's OpenPGP key file holds a public key only, so encrypted files cannot be decrypted: ask the operator to give the private key"}
		}
		if e.PrivateKey.Encrypted {
			return nil, &schema.InputError{Code: schema.CodeNotDecrypted, Message: "the organization's OpenPGP private key is protected by a passphrase, which the daemon cannot type: ask the operator to store it without one"}
		}
	}
	return el, nil
}

// keyErrText says why a key file failed without naming the server's path.
func keyErrText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// signingKeys reads the customer's signing keys: none when there are none.
func (ps pgpSettings) signingKeys() (openpgp.EntityList, error) {
	el, err := readKeyFile(ps.signersFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &schema.InputError{Code: schema.CodeBadSignature, Message: fmt.Sprintf(
			"the organization's OpenPGP signing keys cannot be read, so signatures cannot be checked: ask the operator to check them (%s)", keyErrText(err))}
	}
	return el, nil
}

// readKeyFile reads a key ring, binary or armoured (one or more blocks).
func readKeyFile(path string) (openpgp.EntityList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadPGPKey, maxKeyFile)
	}
	return parseKeys(b)
}

// parseKeys reads keys from b: binary, or armoured in one or more blocks.
func parseKeys(b []byte) (openpgp.EntityList, error) {
	trimmed := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) && !bytes.Contains(b, []byte("-----BEGIN PGP")) {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadPGPKey, err)
		}
		return el, nil
	}
	var all openpgp.EntityList
	r := bytes.NewReader(b)
	for {
		block, err := armor.Decode(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(all) > 0 {
				break // text after the last block
			}
			return nil, fmt.Errorf("%w: %v", ErrBadPGPKey, err)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("%w: an armoured %q block, not a key", ErrBadPGPKey, block.Type)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadPGPKey, err)
		}
		all = append(all, el...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: no key found", ErrBadPGPKey)
	}
	return all, nil
}

// PGPKey describes one OpenPGP key: the organization's (with its public
// key, armoured, for the customer to encrypt to) or a signing key.
type PGPKey struct {
	Fingerprint string    `json:"fingerprint"` // upper-case hex, as gpg prints it
	KeyID       string    `json:"key_id"`
	UserID      string    `json:"user_id,omitempty"`
	Algorithm   string    `json:"algorithm"`
	CreatedAt   time.Time `json:"created_at"`
	PublicKey   string    `json:"public_key,omitempty"`
}

// PGPInfo is an organization's OpenPGP set-up: its key pairs (newest
// first: customers encrypt to the first), whether the operator keeps the
// key in a file, and the signing keys.
type PGPInfo struct {
	Keys             []PGPKey `json:"keys"`
	KeyFile          bool     `json:"key_file"` // the pgp_key_file setting is in use
	RequireSignature bool     `json:"require_signature"`
	Signers          []PGPKey `json:"signers"`
}

func describeKey(e *openpgp.Entity, withPublic bool) (PGPKey, error) {
	k := PGPKey{
		Fingerprint: fingerprint(e), KeyID: fmt.Sprintf("%016X", e.PrimaryKey.KeyId), UserID: userID(e),
		Algorithm: algorithmName(e.PrimaryKey), CreatedAt: e.PrimaryKey.CreationTime.UTC(),
	}
	if withPublic {
		var buf bytes.Buffer
		w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
		if err != nil {
			return k, err
		}
		if err := e.Serialize(w); err != nil {
			return k, err
		}
		if err := w.Close(); err != nil {
			return k, err
		}
		buf.WriteByte('\n')
		k.PublicKey = buf.String()
	}
	return k, nil
}

func algorithmName(pk *packet.PublicKey) string {
	bits, _ := pk.BitLength()
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoRSAEncryptOnly:
		return fmt.Sprintf("RSA %d", bits)
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "Curve25519 (Ed25519)"
	case packet.PubKeyAlgoEd448:
		return "Curve448 (Ed448)"
	case packet.PubKeyAlgoECDSA:
		return fmt.Sprintf("ECDSA %d", bits)
	case packet.PubKeyAlgoDSA:
		return fmt.Sprintf("DSA %d", bits)
	}
	return fmt.Sprintf("algorithm %d", pk.PubKeyAlgo)
}

// PGP returns org's OpenPGP set-up.
func (p *Pipeline) PGP(org string) (PGPInfo, error) {
	o, err := p.db.Org(org)
	if err != nil {
		return PGPInfo{}, err
	}
	ps := p.pgpSettings(org, o.Settings)
	info := PGPInfo{Keys: []PGPKey{}, Signers: []PGPKey{}, KeyFile: ps.operatorKey, RequireSignature: ps.require}
	own, err := readKeyFile(ps.keyFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("read the OpenPGP key of %s: %w", org, err)
	}
	slices.SortStableFunc(own, func(a, b *openpgp.Entity) int { return b.PrimaryKey.CreationTime.Compare(a.PrimaryKey.CreationTime) })
	for _, e := range own {
		k, err := describeKey(e, true)
		if err != nil {
			return info, err
		}
		info.Keys = append(info.Keys, k)
	}
	signers, err := readKeyFile(ps.signersFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("read the OpenPGP signing keys of %s: %w", org, err)
	}
	for _, e := range signers {
		k, err := describeKey(e, false)
		if err != nil {
			return info, err
		}
		info.Signers = append(info.Signers, k)
	}
	return info, nil
}

// GeneratePGPKey makes org an OpenPGP key pair for encrypted uploads,
// unless it has one and rotate is false; created tells which. algorithm
// is "rsa" (RSA 3072, which every OpenPGP tool accepts; the default) or
// "ecc" (Curve25519). ErrPGPKeyFile when the operator keeps the key in a
// file.
func (p *Pipeline) GeneratePGPKey(org, algorithm string, rotate bool) (info PGPInfo, created bool, err error) {
	p.pgpMu.Lock()
	defer p.pgpMu.Unlock()
	o, err := p.db.Org(org)
	if err != nil {
		return info, false, err
	}
	ps := p.pgpSettings(org, o.Settings)
	if ps.operatorKey {
		return info, false, ErrPGPKeyFile
	}
	cfg := &packet.Config{DefaultCipher: packet.CipherAES256}
	switch strings.ToLower(algorithm) {
	case "", "rsa":
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 3072
	case "ecc", "curve25519", "ed25519":
		cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoEdDSA, packet.Curve25519
	default:
		return info, false, fmt.Errorf("%w: algorithm %q: use rsa or ecc", ErrBadPGPKey, algorithm)
	}
	own, err := readKeyFile(ps.keyFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, false, fmt.Errorf("read the OpenPGP key of %s: %w", org, err)
	}
	if len(own) > 0 && !rotate {
		info, err = p.PGP(org)
		return info, false, err
	}
	e, err := openpgp.NewEntity(org+" uploads", "rosterd", "", cfg)
	if err != nil {
		return info, false, fmt.Errorf("generate an OpenPGP key for %s: %w", org, err)
	}
	// go-crypto lists "uncompressed" first (against compression side
	// channels, which files at rest do not have), and GnuPG follows the
	// recipient's order: exports would travel at full size. Ask for
	// ZLIB, then ZIP, then none.
	for _, id := range e.Identities {
		id.SelfSignature.PreferredCompression = []uint8{uint8(packet.CompressionZLIB), uint8(packet.CompressionZIP), uint8(packet.CompressionNone)}
		if err := id.SelfSignature.SignUserId(id.UserId.Id, e.PrimaryKey, e.PrivateKey, cfg); err != nil {
			return info, false, fmt.Errorf("generate an OpenPGP key for %s: %w", org, err)
		}
	}
	own = append(own, e)
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return info, false, err
	}
	for _, e := range own {
		if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
			return info, false, fmt.Errorf("write the OpenPGP key of %s: %w", org, err)
		}
	}
	if err := w.Close(); err != nil {
		return info, false, err
	}
	buf.WriteByte('\n')
	if err := writePrivate(ps.keyFile, buf.Bytes()); err != nil {
		return info, false, fmt.Errorf("write the OpenPGP key of %s: %w", org, err)
	}
	p.log.Info("OpenPGP key generated", "org", org, "fingerprint", fingerprint(e), "rotated", len(own) > 1)
	info, err = p.PGP(org)
	return info, true, err
}

// AddPGPSigners adds the public keys in data (armoured or binary) to
// org's signing keys, replacing keys with the same fingerprint, and
// returns the keys added. A private key, or one that cannot sign, is
// refused with ErrBadPGPKey.
func (p *Pipeline) AddPGPSigners(org string, data []byte) ([]PGPKey, error) {
	p.pgpMu.Lock()
	defer p.pgpMu.Unlock()
	o, err := p.db.Org(org)
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadPGPKey, maxKeyFile)
	}
	add, err := parseKeys(data)
	if err != nil {
		return nil, err
	}
	var out []PGPKey
	for _, e := range add {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("%w: this is a private key; give the public key instead (gpg --export --armor KEY-ID), and keep the private key to yourself", ErrBadPGPKey)
		}
		if _, ok := e.SigningKey(time.Now()); !ok {
			return nil, fmt.Errorf("%w: key %s cannot sign (it has no valid signing key, or it expired or was revoked)", ErrBadPGPKey, fingerprint(e))
		}
		k, err := describeKey(e, false)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	ps := p.pgpSettings(org, o.Settings)
	have, err := readKeyFile(ps.signersFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the OpenPGP signing keys of %s: %w", org, err)
	}
	for _, e := range add {
		have = slices.DeleteFunc(have, func(h *openpgp.Entity) bool { return bytes.Equal(h.PrimaryKey.Fingerprint, e.PrimaryKey.Fingerprint) })
		have = append(have, e)
	}
	if err := writeSigners(ps.signersFile, have); err != nil {
		return nil, fmt.Errorf("write the OpenPGP signing keys of %s: %w", org, err)
	}
	p.log.Info("OpenPGP signing keys added", "org", org, "keys", len(add))
	return out, nil
}

// RemovePGPSigner removes the signing key with the fingerprint (hex, any
// case, spaces allowed) from org; state.ErrNotFound when it has none.
func (p *Pipeline) RemovePGPSigner(org, fp string) error {
	p.pgpMu.Lock()
	defer p.pgpMu.Unlock()
	o, err := p.db.Org(org)
	if err != nil {
		return err
	}
	want := strings.ToUpper(strings.ReplaceAll(fp, " ", ""))
	ps := p.pgpSettings(org, o.Settings)
	have, err := readKeyFile(ps.signersFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read the OpenPGP signing keys of %s: %w", org, err)
	}
	n := len(have)
	have = slices.DeleteFunc(have, func(e *openpgp.Entity) bool { return fingerprint(e) == want })
	if len(have) == n {
		return fmt.Errorf("signing key %s of %s: %w", want, org, state.ErrNotFound)
	}
	if err := writeSigners(ps.signersFile, have); err != nil {
		return fmt.Errorf("write the OpenPGP signing keys of %s: %w", org, err)
	}
	p.log.Info("OpenPGP signing key removed", "org", org, "fingerprint", want)
	return nil
}

func writeSigners(path string, el openpgp.EntityList) error {
	if len(el) == 0 {
		err := os.Remove(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	for _, e := range el {
		if err := e.Serialize(w); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	buf.WriteByte('\n')
	return writePrivate(path, buf.Bytes())
}

// writePrivate replaces path with b atomically, readable by the daemon
// only (0600, in a 0700 folder).
func writePrivate(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// CheckPGPKeyFile checks a key file an operator names in an
// organization's pgp_key_file setting: an absolute path to a private key
// without passphrase that can decrypt. Its error says what is wrong.
func CheckPGPKeyFile(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: %q is not an absolute path", ErrBadPGPKey, path)
	}
	el, err := readKeyFile(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPGPKey, err)
	}
	for _, e := range el {
		switch {
		case e.PrivateKey == nil:
			return fmt.Errorf("%w: %s holds the public key %s only; the daemon needs the private key", ErrBadPGPKey, path, fingerprint(e))
		case e.PrivateKey.Encrypted:
			return fmt.Errorf("%w: the private key %s is protected by a passphrase, which the daemon cannot type: export it without one (gpg --export-secret-keys after gpg --passwd with an empty passphrase)", ErrBadPGPKey, fingerprint(e))
		}
	}
	if len(el.DecryptionKeys()) == 0 {
		return fmt.Errorf("%w: %s has no key that can decrypt", ErrBadPGPKey, path)
	}
	return nil
}
