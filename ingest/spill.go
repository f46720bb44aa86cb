package ingest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
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
	// With keyed set, add records each record's offset and its sort key
	// (the first field, or for two-field records the state pair key of
	// both), for sortedEach.
	keyed bool
	offs  []int64
	keys  []string
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
	if s.keyed {
		s.offs = append(s.offs, s.size)
		if len(fields) == 2 {
			s.keys = append(s.keys, string(pairKey(fields[0], fields[1])))
		} else {
			s.keys = append(s.keys, string(fields[0]))
		}
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

// sortedEach is each in key order (a keyed spill only). bbolt holds a
// transaction's new keys in unsplit in-memory nodes until commit, so
// inserting a million keys in random order into a new bucket costs a
// memmove per key over one huge node; in key order it is an append.
func (s *spill) sortedEach(fn func(f [][]byte) error) error {
	if s == nil || s.n == 0 {
		return nil
	}
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
	}
	idx := make([]int32, s.n)
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int { return strings.Compare(s.keys[a], s.keys[b]) })
	fields := make([][]byte, s.fixed)
	var buf []byte
	for _, i := range idx {
		end := s.size
		if int(i)+1 < len(s.offs) {
			end = s.offs[i+1]
		}
		rec := buf[:0]
		if s.file != nil {
			buf = slices.Grow(buf[:0], int(end-s.offs[i]))[:end-s.offs[i]]
			if _, err := s.file.ReadAt(buf, s.offs[i]); err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			rec = buf
		} else {
			rec = s.mem.Bytes()[s.offs[i]:end]
		}
		for j := range s.fixed {
			l, w := binary.Uvarint(rec)
			fields[j] = rec[w : w+int(l) : w+int(l)]
			rec = rec[w+int(l):]
		}
		if err := fn(fields); err != nil {
			return err
		}
	}
	return nil
}
