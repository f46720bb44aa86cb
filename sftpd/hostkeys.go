package sftpd

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Host key file names inside the directory given to LoadHostKeys, as OpenSSH
// names them.
const (
	HostKeyEd25519 = "ssh_host_ed25519_key"
	HostKeyECDSA   = "ssh_host_ecdsa_key"
	HostKeyRSA     = "ssh_host_rsa_key"
)

// HostKeyFiles are the host key files LoadHostKeys loads, in the order it
// returns them.
var HostKeyFiles = []string{HostKeyEd25519, HostKeyECDSA, HostKeyRSA}

// rsaHostKeyBits is the size of a generated RSA host key.
const rsaHostKeyBits = 3072

// LoadHostKeys loads the HostKeyFiles in dir (OpenSSH private key format,
// mode 0600): ed25519, ECDSA P-256 and RSA, generating each one first if it
// is missing (dir is created 0700). SPEC §2: host keys are generated on first
// start and never change afterwards, so an existing file that cannot be
// parsed is an error, never a reason to generate a new key; a data
// directory from a release without the ECDSA key gets it added, the others
// stay. The matching .pub files are written next to generated keys for the
// operator.
//
// The ECDSA key is for clients that know neither ed25519 nor RSA with
// SHA-2 (JSch 0.1.54), which otherwise need the RSA key signed with SHA-1
// (see hostKeySigners); only they are offered it (see hostKeysFor).
// Generating the RSA key takes about a second.
func LoadHostKeys(dir string) ([]ssh.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host keys: %w", err)
	}
	return LoadHostKeysFrom(func(name string, gen func() ([]byte, error)) ([]byte, error) {
		return loadOrGenerate(filepath.Join(dir, name), gen)
	})
}

// LoadHostKeysFrom loads the HostKeyFiles, in that order, through load:
// load returns the private key (OpenSSH format) kept under name, keeping
// the one gen makes when there is none, and never replacing one that is
// kept. LoadHostKeys keeps them in files; a fleet of instances keeps them
// in the store they share, so that a client sees the same host key
// whichever instance answers (SPEC §11). A kept key that cannot be parsed
// is an error, as in LoadHostKeys.
func LoadHostKeysFrom(load func(name string, gen func() ([]byte, error)) ([]byte, error)) ([]ssh.Signer, error) {
	var signers []ssh.Signer
	for _, name := range HostKeyFiles {
		data, err := load(name, func() ([]byte, error) { return GenerateHostKey(name) })
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", name, err)
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", name, err)
		}
		signers = append(signers, s)
	}
	return signers, nil
}

// GenerateHostKey returns a new private key, PEM in OpenSSH's format, of
// the type the HostKeyFiles name says: RSA (3072 bits) for HostKeyRSA,
// ECDSA P-256 for HostKeyECDSA, ed25519 otherwise.
func GenerateHostKey(name string) ([]byte, error) {
	var key any
	var err error
	switch name {
	case HostKeyRSA:
		key, err = rsa.GenerateKey(rand.Reader, rsaHostKeyBits)
	case HostKeyECDSA:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// loadOrGenerate reads the key file at path, or writes the one gen makes
// and its .pub beside it.
func loadOrGenerate(path string, gen func() ([]byte, error)) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	if data, err = gen(); err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(path, data, 0o600); err != nil {
		return nil, err
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	if err := WriteFileAtomic(path+".pub", pub, 0o644); err != nil {
		return nil, err
	}
	return data, nil
}

// WriteFileAtomic writes data to a temporary file in path's directory, syncs
// it and renames it onto path, so a crash never leaves a truncated key.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Fingerprint returns the SHA-256 fingerprint of k as `ssh-keygen -lf`
// prints it ("SHA256:" and unpadded base64).
func Fingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// KeygenLine renders a key's fingerprint as `ssh-keygen -lf` prints it
// for a file holding the key with the given comment: bits, SHA256
// fingerprint, comment, type.
func KeygenLine(k ssh.PublicKey, comment string) string {
	bits, name := 0, strings.ToUpper(strings.TrimPrefix(k.Type(), "ssh-"))
	if ck, ok := k.(ssh.CryptoPublicKey); ok {
		switch pk := ck.CryptoPublicKey().(type) {
		case *rsa.PublicKey:
			bits = pk.N.BitLen()
		case *ecdsa.PublicKey:
			bits, name = pk.Curve.Params().BitSize, "ECDSA"
		default:
			bits = 256 // ed25519
		}
	}
	if comment == "" {
		comment = "no comment"
	}
	return fmt.Sprintf("%d %s %s (%s)", bits, Fingerprint(k), comment, name)
}

// hostKeySigners returns the host keys as the server offers them. SPEC §3:
// the host key is never signed with SHA-1 ssh-rsa unless the operator opts
// in (allowSHA1), so an RSA key signs with rsa-sha2-512 and rsa-sha2-256
// only; other keys have one signature algorithm and are returned as they
// are.
func hostKeySigners(keys []ssh.Signer, allowSHA1 bool) ([]ssh.Signer, error) {
	out := make([]ssh.Signer, 0, len(keys))
	for _, k := range keys {
		if k.PublicKey().Type() != ssh.KeyAlgoRSA {
			out = append(out, k)
			continue
		}
		as, ok := k.(ssh.AlgorithmSigner)
		if !ok {
			return nil, fmt.Errorf("rsa host key %s cannot choose its signature algorithm", Fingerprint(k.PublicKey()))
		}
		algs := []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		if allowSHA1 {
			algs = append(algs, ssh.KeyAlgoRSA)
		}
		ms, err := ssh.NewSignerWithAlgorithms(as, algs)
		if err != nil {
			return nil, fmt.Errorf("rsa host key: %w", err)
		}
		out = append(out, ms)
	}
	return out, nil
}

// hostKeysFor chooses the host keys offered to one client. The ECDSA key
// came later than the ed25519 and RSA keys, and clients that prefer ECDSA
// (Go's x/crypto and so rclone, libssh2 and so curl) would switch to it and
// then refuse it, not finding it in the known_hosts their users pinned. So
// it is offered only to a client whose KEXINIT lists no algorithm of the
// other keys (JSch 0.1.54, and ssh-rsa-only clients while SHA-1 is off),
// and to a client whose KEXINIT the server did not read in time.
func (s *Server) hostKeysFor(h clientHello) []ssh.Signer {
	if h.hostKeys == nil {
		return s.hostKeys
	}
	var others []ssh.Signer
	usable := false
	for _, k := range s.hostKeys {
		if strings.HasPrefix(k.PublicKey().Type(), "ecdsa-sha2-") {
			continue
		}
		others = append(others, k)
		algs := []string{k.PublicKey().Type()}
		if ms, ok := k.(ssh.MultiAlgorithmSigner); ok {
			algs = ms.Algorithms()
		}
		usable = usable || slices.ContainsFunc(algs, func(a string) bool { return slices.Contains(h.hostKeys, a) })
	}
	if !usable {
		return s.hostKeys
	}
	return others
}
