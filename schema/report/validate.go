package report

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/rosterd/rosterd/schema"
)

// Errors of Validate: the inputs cannot form a batch. Both are usage
// errors of `rosterd validate` (exit code 2).
var (
	ErrUnknownKind = errors.New("cannot tell the kind of file from its name")
	ErrSameKind    = errors.New("two files of the same kind")
)

// Input is one file for Validate.
type Input struct {
	Name string      // as shown in the report
	Kind schema.Kind // "" = from Name (schema.KindOf)
	R    io.Reader
	// Outer, when not nil, is the file as uploaded that R was decoded
	// from (a compressed file): the report lists it with Outer's name,
	// size, hash and Decoded, and Name as the CSV file inside.
	Outer *File
}

// Options are the settings Validate checks with: the limits (zero: the
// defaults) and an organization's mapping (nil: none).
type Options struct {
	Limits  schema.Limits
	Mapping *schema.Mapping
}

// Validate checks files the way an upload of them would be checked and
// returns the report that `rosterd validate` prints: status valid or
// invalid, the files with size, SHA-256 and rows, the counts of the batch,
// and the issues. The files are checked as one batch, users first, so that
// user_groups.csv is checked against users.csv. Without a users file the
// user_ids of user_groups.csv cannot be checked offline; a note says so.
// now is the report's CreatedAt.
//
// The error is ErrUnknownKind, ErrSameKind or an I/O error of an input.
func Validate(inputs []Input, lim schema.Limits, now time.Time) (*Report, error) {
	return ValidateWith(inputs, Options{Limits: lim}, now)
}

// ValidateWith is Validate with an organization's mapping: the report
// then says how each column was read.
func ValidateWith(inputs []Input, opt Options, now time.Time) (*Report, error) {
	lim := opt.Limits
	order := map[schema.Kind]int{schema.Users: 0, schema.Groups: 1, schema.UserGroups: 2}
	in := make([]Input, len(inputs))
	copy(in, inputs)
	seen := map[schema.Kind]string{}
	for i := range in {
		if in[i].Kind == "" {
			k, ok := schema.KindOf(in[i].Name)
			if !ok {
				return nil, fmt.Errorf("%s: %w (expected users*.csv, user_groups*.csv or groups*.csv; give --kind)", in[i].Name, ErrUnknownKind)
			}
			in[i].Kind = k
		}
		if _, ok := order[in[i].Kind]; !ok {
			return nil, fmt.Errorf("%s: %w %q", in[i].Name, ErrUnknownKind, in[i].Kind)
		}
		if prev, dup := seen[in[i].Kind]; dup {
			return nil, fmt.Errorf("%s and %s: %w (%s); a batch has at most one of each", prev, in[i].Name, ErrSameKind, in[i].Kind)
		}
		seen[in[i].Kind] = in[i].Name
	}
	sort.SliceStable(in, func(i, j int) bool { return order[in[i].Kind] < order[in[j].Kind] })

	r := &Report{Version: Version, CreatedAt: now.UTC().Truncate(time.Second)}
	_, haveUsers := seen[schema.Users]
	exists := func(string) bool { return true }
	if _, ok := seen[schema.UserGroups]; ok && !haveUsers {
		r.Notes = append(r.Notes, "user_groups.csv was checked without users.csv, so whether each user_id exists could not be checked here: on upload, each must exist in the organization's current users")
	}
	c := schema.NewChecker(lim, exists)
	c.SetMapping(opt.Mapping)
	for _, f := range in {
		h := &hashCounter{h: sha256.New()}
		src := hashingReader(f.R, h)
		var res schema.FileResult
		var err error
		switch f.Kind {
		case schema.Users:
			res, err = c.Users(src, f.Name, nil)
		case schema.UserGroups:
			res, err = c.UserGroups(src, f.Name, nil)
		case schema.Groups:
			res, err = c.Groups(src, f.Name, nil)
		}
		if err != nil {
			return nil, err
		}
		// Hash what the checker did not read (after a fatal issue).
		if err := hashRest(src, h); err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name, err)
		}
		file := File{Name: f.Name, Kind: f.Kind, Size: h.n, SHA256: hex.EncodeToString(h.h.Sum(nil)), Rows: res.Rows, ErrorRows: res.ErrorRows}
		if o := f.Outer; o != nil {
			file.Name, file.Size, file.SHA256, file.Inner, file.InnerSize, file.Decoded = o.Name, o.Size, o.SHA256, f.Name, h.n, o.Decoded
		}
		r.Files = append(r.Files, file)
	}
	r.FromChecker(c)
	r.Status = StatusValid
	if c.Errors() > 0 {
		r.Status = StatusInvalid
	}
	return r, nil
}

// hashCounter hashes and counts what is written to it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (w *hashCounter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// hashingReader returns a reader of r that feeds h. When r can seek (an
// *os.File), so can the result, which lets the checker read lines again
// (schema.Checker.Users); each byte of the file still reaches h once, in
// order.
func hashingReader(r io.Reader, h *hashCounter) io.Reader {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		return io.TeeReader(r, h)
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return io.TeeReader(r, h)
	}
	return &seekHasher{rs: rs, h: h, start: start, pos: start}
}

// seekHasher hashes the bytes it reads beyond those already hashed.
type seekHasher struct {
	rs         io.ReadSeeker
	h          *hashCounter
	start, pos int64 // offsets in rs; bytes [start, start+h.n) are hashed
}

func (s *seekHasher) Read(p []byte) (int, error) {
	n, err := s.rs.Read(p)
	if done := s.start + s.h.n; s.pos <= done && s.pos+int64(n) > done {
		s.h.Write(p[done-s.pos : n])
	}
	s.pos += int64(n)
	return n, err
}

func (s *seekHasher) Seek(off int64, whence int) (int64, error) {
	p, err := s.rs.Seek(off, whence)
	if err == nil {
		s.pos = p
	}
	return p, err
}

// hashRest feeds h the rest of the file that src has not hashed. An
// *schema.InputError of a decoded input is the checker's to report: the
// rest of such a file cannot be read.
func hashRest(src io.Reader, h *hashCounter) error {
	err := hashRestErr(src, h)
	if errors.As(err, new(*schema.InputError)) {
		return nil
	}
	return err
}

func hashRestErr(src io.Reader, h *hashCounter) error {
	if s, ok := src.(*seekHasher); ok {
		if _, err := s.Seek(s.start+h.n, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, s)
		return err
	}
	_, err := io.Copy(io.Discard, src)
	return err
}
