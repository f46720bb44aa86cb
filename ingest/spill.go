package ingest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// spill is an append-only list of records of a few byte fields each, held
// in memory up to spillMemory bytes and on a temporary file beyond, so that
// the changes of a million-user first upload do not have to fit in memory
// between the diff and the apply.
type spill struct {
	dir   string
	n     int
	mem   bytes.Buffer
	file  *os.File
	w     *bufio.Writer
	fixed int // fields per record
	size  int64
}

const spillMemory = 4 << 20

func newSpill(dir string, fields int) *spill { return &spill{dir: dir, fixed: fields} }

// Len returns the number of records.
func (s *spill) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// add appends one record of s.fixed fields.
func (s *spill) add(fields ...[]byte) error {
	var hdr [binary.MaxVarintLen64]byte
	var w io.Writer = &s.mem
	if s.w != nil {
		w = s.w
	} else if s.mem.Len() > spillMemory {
		f, err := os.CreateTemp(s.dir, "rosterd-spill-*")
		if err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		os.Remove(f.Name()) // gone on close, whatever happens
		s.file, s.w = f, bufio.NewWriterSize(f, 256<<10)
		if _, err := s.w.Write(s.mem.Bytes()); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		s.mem = bytes.Buffer{}
		w = s.w
	}
	for _, f := range fields {
		n := binary.PutUvarint(hdr[:], uint64(len(f)))
		s.size += int64(n + len(f))
		if _, err := w.Write(hdr[:n]); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		if _, err := w.Write(f); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
	}
	s.n++
	return nil
}

// each calls fn for every record in order. The fields are valid only
// during the call.
func (s *spill) each(fn func(f [][]byte) error) error {
	if s == nil || s.n == 0 {
		return nil
	}
	var r *bufio.Reader
	if s.file != nil {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		r = bufio.NewReaderSize(s.file, 256<<10)
	} else {
		r = bufio.NewReader(bytes.NewReader(s.mem.Bytes()))
	}
	fields := make([][]byte, s.fixed)
	var buf []byte
	for range s.n {
		buf = buf[:0]
		var ends [8]int
		for i := range s.fixed {
			l, err := binary.ReadUvarint(r)
			if err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			start := len(buf)
			buf = slices.Grow(buf, int(l))[:start+int(l)]
			if _, err := io.ReadFull(r, buf[start:]); err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			ends[i] = len(buf)
		}
		prev := 0
		for i := range s.fixed {
			fields[i] = buf[prev:ends[i]:ends[i]]
			prev = ends[i]
		}
		if err := fn(fields); err != nil {
			return err
		}
	}
	if s.file != nil {
		if _, err := s.file.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
	}
	return nil
}

// close releases the temporary file.
func (s *spill) close() {
	if s != nil && s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

// pairKey is the key of a pair in the state's membership indexes: the
// length of a as a uvarint, a, then b.
func pairKey(a, b []byte) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(a)+len(b))
	k = binary.AppendUvarint(k, uint64(len(a)))
	k = append(k, a...)
	return append(k, b...)
}

// pairKeyOf is the sort key of a spill record: for a membership (two
// fields) the state's pair key, else the first field (the user id).
func pairKeyOf(f [][]byte) []byte {
	if len(f) == 2 {
		return pairKey(f[0], f[1])
	}
	return f[0]
}

// chunks is each in chunks of up to n records, each chunk in key order,
// so that memory stays bounded by the chunk and a chunk's keys go into
// bbolt in order. A spill that fits in one chunk is in key order.
func (s *spill) chunks(n int, key func([][]byte) []byte, fn func(f [][]byte) error) error {
	type rec struct {
		key    []byte
		fields [][]byte
	}
	var buf []rec
	flush := func() error {
		slices.SortStableFunc(buf, func(a, b rec) int { return bytes.Compare(a.key, b.key) })
		for _, r := range buf {
			if err := fn(r.fields); err != nil {
				return err
			}
		}
		buf = buf[:0]
		return nil
	}
	err := s.each(func(f [][]byte) error {
		fields := make([][]byte, len(f))
		for i := range f {
			fields[i] = bytes.Clone(f[i])
		}
		buf = append(buf, rec{key(fields), fields})
		if len(buf) >= n {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
