package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rosterd/rosterd/schema"
)

// OpenPGP uploads (SPEC §4): *.csv.gpg, *.csv.pgp and armoured *.csv.asc
// are decrypted with the organization's private key (pgp_keys.go), read
// with github.com/ProtonMail/go-crypto, streamed: the decrypted text is
// never stored. A signature is checked when the text has been read to its
// end, as OpenPGP allows no sooner; a file whose signature fails then, or
// that the organization requires signed and is not, is rejected there
// (the checker's rows up to then are discarded with the batch, SPEC §4).
//
// The messages say what an admin can do: which key the file was
// encrypted to when not the organization's, that a passphrase was used,
// that the file is damaged, who signed it.

// errPassphrase stops ReadMessage at a passphrase-encrypted message.
var errPassphrase = errors.New("encrypted with a passphrase")

// keyRecorder is the key ring ReadMessage sees: it notes the key ids the
// message is encrypted to, so that a refusal can name them.
type keyRecorder struct {
	openpgp.EntityList
	ids []uint64
}

func (k *keyRecorder) KeysById(id uint64) []openpgp.Key {
	if !slices.Contains(k.ids, id) {
		k.ids = append(k.ids, id)
	}
	return k.EntityList.KeysById(id)
}

// decryptLayer reads the OpenPGP message r (binary or armoured) with the
// organization's keys. set receives how it was read: at once, and again
// once the signature is checked. A problem of the file is an
// *schema.InputError; other errors are the archived copy's.
func decryptLayer(r io.Reader, src *srcCounter, name string, ps pgpSettings, set func(string)) (io.Reader, error) {
	own, err := ps.decryptionKeys()
	if err != nil {
		return nil, err
	}
	if len(own) == 0 {
		return nil, &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
			"%s is OpenPGP-encrypted, but the organization has no OpenPGP key yet: ask the operator to run `rosterd org pgp %s` and encrypt the file to the public key it shows", msgName(name), ps.org)}
	}
	signers, err := ps.signingKeys()
	if err != nil {
		return nil, err
	}
	body, ierr := dearmor(r, src, name)
	if ierr != nil {
		return nil, ierr
	}
	kr := &keyRecorder{EntityList: append(slices.Clip(own), signers...)}
	prompt := func(keys []openpgp.Key, symmetric bool) ([]byte, error) {
		if symmetric {
			return nil, errPassphrase
		}
		return nil, pgperrors.ErrKeyIncorrect
	}
	md, err := openpgp.ReadMessage(body, kr, prompt, &packet.Config{})
	if err != nil {
		if serr := src.sourceErr(err); serr != nil {
			return nil, serr
		}
		return nil, notDecrypted(err, name, own, kr.ids, ps.org)
	}
	sr := &sigReader{md: md, src: src, name: name, ps: ps, own: own, signers: signers, set: set}
	sr.decrypted = "not encrypted (an OpenPGP message that is only signed)"
	if md.IsEncrypted {
		sr.decrypted = "decrypted with key " + keyName(md.DecryptedWith.Entity)
	}
	set(sr.decrypted)
	return sr, nil
}

// dearmor returns the binary message of r: r itself, or the body of an
// armoured "PGP MESSAGE" block (whatever the file's name says).
func dearmor(r io.Reader, src *srcCounter, name string) (io.Reader, *schema.InputError) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(256)
	head = bytes.TrimLeft(head, " \t\r\n\ufeff")
	if !bytes.HasPrefix(head, []byte("-----BEGIN PGP ")) {
		return br, nil
	}
	switch {
	case bytes.HasPrefix(head, []byte("-----BEGIN PGP MESSAGE-----")):
	case bytes.HasPrefix(head, []byte("-----BEGIN PGP SIGNED MESSAGE-----")):
		return nil, &schema.InputError{Code: schema.CodeUnsupportedFormat, Message: fmt.Sprintf(
			"%s is a clear-signed text (gpg --clearsign), not an encrypted file: encrypt it to the organization's key (gpg --sign --encrypt --armor)", msgName(name))}
	default:
		return nil, &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
			"%s holds an OpenPGP key or signature, not an encrypted message: upload the encrypted CSV file", msgName(name))}
	}
	block, err := armor.Decode(br)
	if err != nil {
		if serr := src.sourceErr(err); serr != nil {
			return errReader{serr}, nil
		}
		return nil, &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf(
			"%s is an armoured OpenPGP file that is damaged (%v): encrypt the file again and upload it", msgName(name), err)}
	}
	return block.Body, nil
}

// notDecrypted explains why ReadMessage refused the file.
func notDecrypted(err error, name string, own openpgp.EntityList, to []uint64, org string) *schema.InputError {
	n := msgName(name)
	ours := ownKeyIDs(own)
	switch {
	case errors.Is(err, errPassphrase):
		return &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
			"%s is encrypted with a passphrase (gpg --symmetric), not to the organization's key: encrypt it to the organization's public key instead (gpg --encrypt --recipient %s)", n, fingerprint(newest(own)))}
	case errors.Is(err, pgperrors.ErrKeyIncorrect) && len(to) > 0 && !slices.ContainsFunc(to, func(id uint64) bool { return slices.Contains(ours, id) }):
		ids := make([]string, len(to))
		for i, id := range to {
			ids[i] = fmt.Sprintf("%016X", id)
		}
		return &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
			"%s is not encrypted to this organization's key: it is encrypted to key %s, and the organization's key is %s. Encrypt it to the public key that `rosterd org pgp %s` shows (an old or another organization's key was used)",
			n, strings.Join(ids, ", "), keyName(newest(own)), org)}
	case errors.Is(err, pgperrors.ErrKeyIncorrect):
		return &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
			"%s is addressed to the organization's key but could not be decrypted with it (the wrong key, or the file is damaged): encrypt the file again to key %s and upload it", n, keyName(newest(own)))}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf(
			"%s ends too early to be an OpenPGP-encrypted file (it is empty or the upload was cut off): upload it again", n)}
	}
	var unsupported pgperrors.UnsupportedError
	if errors.As(err, &unsupported) {
		return &schema.InputError{Code: schema.CodeUnsupportedFormat, Message: fmt.Sprintf(
			"%s uses an OpenPGP feature rosterd does not accept (%v): encrypt it with current GnuPG defaults", n, err)}
	}
	return &schema.InputError{Code: schema.CodeNotDecrypted, Message: fmt.Sprintf(
		"%s is not an OpenPGP-encrypted file, or it is damaged (%v): encrypt the CSV file to the organization's key and upload it; a plain CSV file must be named .csv", n, err)}
}

// ownKeyIDs are the key ids of the organization's keys and subkeys.
func ownKeyIDs(own openpgp.EntityList) []uint64 {
	var ids []uint64
	for _, e := range own {
		ids = append(ids, e.PrimaryKey.KeyId)
		for _, s := range e.Subkeys {
			ids = append(ids, s.PublicKey.KeyId)
		}
	}
	return ids
}

// sigReader is the decrypted text; at its end it checks the signature.
type sigReader struct {
	md        *openpgp.MessageDetails
	src       *srcCounter
	name      string
	ps        pgpSettings
	own       openpgp.EntityList
	signers   openpgp.EntityList
	set       func(string)
	decrypted string
	done      error // the verdict, once given
	ended     bool
}

func (s *sigReader) Read(p []byte) (int, error) {
	if s.ended {
		return 0, s.done
	}
	n, err := s.md.UnverifiedBody.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		s.ended, s.done = true, io.EOF
		if ie := s.verdict(); ie != nil {
			s.done = ie
		}
		return n, s.done
	}
	if serr := s.src.sourceErr(err); serr != nil {
		return n, serr
	}
	what := fmt.Sprintf("%s is damaged (%v): it was changed or cut off after it was encrypted. Encrypt it again and upload it", msgName(s.name), err)
	if errors.Is(err, pgperrors.ErrMDCHashMismatch) || errors.Is(err, pgperrors.ErrMDCMissing) {
		what = fmt.Sprintf("%s is damaged: its integrity check failed, so it was changed or cut off after it was encrypted. Encrypt it again and upload it", msgName(s.name))
	}
	s.ended, s.done = true, &schema.InputError{Code: schema.CodeCorruptFile, Message: what}
	return n, s.done
}

// verdict checks the signature once the text has been read whole, and
// completes the description.
func (s *sigReader) verdict() *schema.InputError {
	md, n := s.md, msgName(s.name)
	isSigner := md.SignedBy != nil && slices.ContainsFunc(s.signers, func(e *openpgp.Entity) bool {
		return bytes.Equal(e.PrimaryKey.Fingerprint, md.SignedBy.Entity.PrimaryKey.Fingerprint)
	})
	desc := s.decrypted
	var ie *schema.InputError
	switch {
	case md.IsSigned && md.SignedBy != nil && md.SignatureError != nil:
		ie = &schema.InputError{Code: schema.CodeBadSignature, Message: fmt.Sprintf(
			"%s is signed by %s, but the signature does not match the file (%v): the file was changed after it was signed, or the signature is damaged. Sign and encrypt it again and upload it",
			n, keyName(md.SignedBy.Entity), md.SignatureError)}
		desc += ", BAD signature by " + keyName(md.SignedBy.Entity)
	case md.IsSigned && isSigner:
		desc += ", signed by " + keyName(md.SignedBy.Entity)
	case md.IsSigned:
		id := fmt.Sprintf("%016X", md.SignedByKeyId)
		if s.ps.require {
			ie = &schema.InputError{Code: schema.CodeBadSignature, Message: fmt.Sprintf(
				"%s is signed by key %s, which is not one of the organization's signing keys (%s): sign it with one of them, or ask the operator to add that key (rosterd org pgp %s --add-signer FILE)",
				n, id, signerList(s.signers), s.ps.org)}
		}
		desc += ", signed by key " + id + ", which is not one of the organization's signing keys (the signature was not checked)"
	default:
		if s.ps.require {
			ie = &schema.InputError{Code: schema.CodeBadSignature, Message: fmt.Sprintf(
				"%s is not signed, and the organization accepts only files signed by one of its signing keys (%s): sign it when encrypting (gpg --sign --encrypt --local-user YOUR-KEY --recipient %s)",
				n, signerList(s.signers), fingerprint(newest(s.own)))}
		}
		desc += ", not signed"
	}
	s.set(desc)
	return ie
}

// signerList names the signing keys for a message.
func signerList(signers openpgp.EntityList) string {
	if len(signers) == 0 {
		return "none is set up yet"
	}
	names := make([]string, len(signers))
	for i, e := range signers {
		names[i] = keyName(e)
	}
	return strings.Join(names, "; ")
}

// keyName names a key for a person: its first user id and fingerprint.
func keyName(e *openpgp.Entity) string {
	if e == nil {
		return "an unknown key"
	}
	fp := fingerprint(e)
	if id := userID(e); id != "" {
		return id + " (" + fp + ")"
	}
	return fp
}

// fingerprint is a key's fingerprint as gpg prints it (upper-case hex).
func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
}

// userID is the key's primary user id, or the first in order, or "".
func userID(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return id.Name
	}
	first := ""
	for name := range e.Identities {
		if first == "" || name < first {
			first = name
		}
	}
	return first
}

// newest is the organization's newest key (keys are added at the end),
// the one customers encrypt to.
func newest(own openpgp.EntityList) *openpgp.Entity { return own[len(own)-1] }
