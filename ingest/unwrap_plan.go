package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// Compressed and encrypted files of a dry run (Plan) and of `rosterd
// validate` (OpenLocal) are decoded like archived uploads (unwrap.go).

// decodeOpts are the decoding settings of an organization's batch.
func (p *Pipeline) decodeOpts(set settings) decodeOpts {
	return decodeOpts{maxRatio: p.cfg.MaxCompressionRatio, pgp: set.pgp}
}

// planOpen is the open func of a dry run's file: decoded when its name
// (or bf.Inner, a zip member) says so. The file must then be readable at
// offsets (a multipart.File or an *os.File is).
func (p *Pipeline) planOpen(ctx context.Context, set settings, open func() (io.ReadCloser, error), bf *state.BatchFile) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		if _, layers := splitName(bf.Name); len(layers) == 0 && bf.Inner == "" {
			return ctxReader{ctx, rc}, nil
		}
		a, size, err := asArchived(rc)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("%s: %w", bf.Name, err)
		}
		d, err := decode(ctx, a, size, bf, p.decodeOpts(set))
		if err != nil {
			rc.Close()
			return nil, err
		}
		return newReadAhead(d), nil
	}
}

// asArchived returns rc as a file readable at offsets, and its size.
func asArchived(rc io.ReadCloser) (archived, int64, error) {
	a, ok := rc.(archived)
	sk, ok2 := rc.(io.Seeker)
	if !ok || !ok2 {
		return nil, 0, errors.New("a compressed or encrypted file must be readable at offsets")
	}
	size, err := sk.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = sk.Seek(0, io.SeekStart)
	}
	return a, size, err
}

// planRawHash returns the size and SHA-256 of a dry run's file as given
// (for a decoded file, the plan's own hashing saw the text).
func planRawHash(open func() (io.ReadCloser, error)) (int64, string) {
	rc, err := open()
	if err != nil {
		return 0, ""
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return 0, ""
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

// planZips replaces each zip of a dry run by its members, as expandZips
// does for a batch. Its notes say what was left out.
func (p *Pipeline) planZips(set settings, files []PlanFile) ([]PlanFile, []string, error) {
	var out []PlanFile
	var notes []string
	for _, f := range files {
		k := f.Kind
		if k == "" {
			k, _ = set.kindOf(filepath.Base(f.Name))
		}
		if k != kindZip {
			out = append(out, f)
			continue
		}
		if _, layers := splitName(filepath.Base(f.Name)); len(layers) > 1 {
			return nil, nil, fmt.Errorf("%s: %w: a zip archive inside another wrapping is not read; compress or encrypt each CSV file by itself", f.Name, ErrBadFiles)
		}
		members, more, err := func() ([]zipMember, []string, error) {
			rc, err := f.Open()
			if err != nil {
				return nil, nil, err
			}
			defer rc.Close()
			a, size, err := asArchived(rc)
			if err != nil {
				return nil, nil, err
			}
			return zipMembers(set.plainKindOf, a, size, filepath.Base(f.Name))
		}()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w: not a zip archive rosterd can read (%v)", f.Name, ErrBadFiles, err)
		}
		notes = append(notes, more...)
		for _, m := range members {
			out = append(out, PlanFile{Name: f.Name, Kind: m.kind, Open: f.Open, inner: m.name})
		}
	}
	return out, notes, nil
}

// LocalFile is a CSV file inside a local compressed file, for `rosterd
// validate`: its name and kind (from the name, "" when it cannot be
// told), its text, and the file as given (name, size, SHA-256) with how
// it is decoded.
type LocalFile struct {
	Name    string
	Kind    schema.Kind
	R       io.Reader
	Outer   string
	Size    int64
	SHA256  string
	Decoded string
}

// ErrEncryptedLocal is returned by OpenLocal for an OpenPGP file: only the
// daemon holds the organization's key.
var ErrEncryptedLocal = errors.New("an OpenPGP-encrypted file can only be decrypted by the daemon, which holds the organization's key: check it with `rosterd plan --org ORG FILE`")

// OpenLocal opens a local .gz or .zip file the way an upload of it is
// read: the CSV files inside it (for a zip, those named users*.csv,
// user_groups*.csv, groups*.csv) and notes on what was left out. It
// returns no files for a plain file, and ErrEncryptedLocal for an
// OpenPGP one. Close the Closer when done.
func OpenLocal(path string, maxRatio int) ([]LocalFile, []string, io.Closer, error) {
	name := filepath.Base(path)
	_, layers := splitName(name)
	if len(layers) == 0 {
		return nil, nil, nil, nil
	}
	for _, l := range layers {
		if l == layerPGP {
			return nil, nil, nil, fmt.Errorf("%s: %w", name, ErrEncryptedLocal)
		}
	}
	raw, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	h := sha256.New()
	size, err := io.Copy(h, raw)
	raw.Close()
	if err != nil {
		return nil, nil, nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	var closers multiCloser
	var out []LocalFile
	var notes []string
	add := func(inner string) error {
		fh, err := os.Open(path)
		if err != nil {
			return err
		}
		closers = append(closers, fh)
		bf := &state.BatchFile{Name: name, Inner: inner}
		d, err := decode(context.Background(), fh, size, bf, decodeOpts{maxRatio: maxRatio})
		if err != nil {
			return err
		}
		k, _ := schema.KindOf(csvName(*bf))
		out = append(out, LocalFile{Name: csvName(*bf), Kind: k, R: d, Outer: name, Size: size, SHA256: sum, Decoded: bf.Decoded})
		return nil
	}
	if layers[len(layers)-1] == layerZip {
		fh, err := os.Open(path)
		if err != nil {
			return nil, nil, nil, err
		}
		members, more, err := zipMembers(schema.KindOf, fh, size, name)
		fh.Close()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: not a zip archive rosterd can read: %w", name, err)
		}
		notes = more
		for _, m := range members {
			if err := add(m.name); err != nil {
				closers.Close()
				return nil, nil, nil, err
			}
		}
		return out, notes, closers, nil
	}
	if err := add(""); err != nil {
		closers.Close()
		return nil, nil, nil, err
	}
	return out, notes, closers, nil
}

type multiCloser []io.Closer

// Close closes every file; the decoded readers close theirs too, so
// errors of a second close are not news.
func (m multiCloser) Close() error {
	for _, c := range m {
		c.Close()
	}
	return nil
}
