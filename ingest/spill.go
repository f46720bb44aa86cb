package ingest

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// spill is an append-only list of records of a few byte fields each, held
// in memory up to a few MB and on a temporary file beyond, so that the
// changes of a million-user first upload do not have to fit in memory
// between the diff and the apply.
//
// A keyed spill (newKeyedSpill) is also read back in the order of the
// snapshot's keys (sorted): each time its records in memory reach
// runBytes, it sorts them and writes them to its file as one sorted run;
// sorted merges the runs. The apply writes each bucket of the snapshot in
// key order that way: bbolt holds a transaction's new keys in unsplit
// nodes until it commits, and writes a staging transaction's pages once
// each only when its keys ascend. A first upload in file order, with ids
// in random order, moved half of a growing node at every insert and
// rewrote pages all over the tree at every commit.
type spill struct {
	dir   string
	n     int
	fixed int   // fields per record
	size  int64 // bytes of the records' fields, as encoded
	keyed bool

	// mem holds the records not on file yet: each field a uvarint length
	// and its bytes; in a keyed spill each record starts with its key
	// (same encoding), and recs indexes them.
	mem  []byte
	memN int // records in mem
	recs []sortRec
	kbuf []byte
	file *os.File
	w    *bufio.Writer
	off  int64     // bytes written to file
	runs []fileRun // on file: a keyed spill's sorted runs, else one run
}

// spillMemory is what an unkeyed spill keeps in memory before it writes
// to a file.
var spillMemory = 4 << 20

// runBytes is what a keyed spill sorts in memory at a time: the size of
// its runs on file (at a million users, about 50 runs of created users).
var runBytes = 8 << 20

func newSpill(dir string, fields int) *spill { return &spill{dir: dir, fixed: fields} }

// newKeyedSpill returns a spill that sorted can read in key order
// (appendKeyOf).
func newKeyedSpill(dir string, fields int) *spill {
	return &spill{dir: dir, fixed: fields, keyed: true}
}

// Len returns the number of records.
func (s *spill) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// sortRec is a record in a keyed spill's memory: its key is
// mem[start:mid] (without its length), its fields mem[mid:end]; pre is
// the key's first 8 bytes, big endian, which decide most comparisons.
type sortRec struct {
	pre             uint64
	start, mid, end int
}

func keyPrefix(k []byte) uint64 {
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// fileRun is one run on a spill's file: n records in [off, off+size).
type fileRun struct {
	off, size int64
	n         int
}

// add appends one record of s.fixed fields.
func (s *spill) add(fields ...[]byte) error {
	start := len(s.mem)
	if s.keyed {
		s.kbuf = appendKeyOf(s.kbuf[:0], fields)
		s.mem = append(s.mem, s.kbuf...)
	}
	mid := len(s.mem)
	for _, f := range fields {
		s.mem = binary.AppendUvarint(s.mem, uint64(len(f)))
		s.mem = append(s.mem, f...)
	}
	s.size += int64(len(s.mem) - mid)
	s.n++
	s.memN++
	if s.keyed {
		s.recs = append(s.recs, sortRec{keyPrefix(s.kbuf), start, mid, len(s.mem)})
		if len(s.mem) >= runBytes {
			return s.writeRun()
		}
		return nil
	}
	if len(s.mem) > spillMemory {
		if err := s.open(); err != nil {
			return err
		}
		if err := s.write(s.mem); err != nil {
			return err
		}
		if len(s.runs) == 0 {
			s.runs = append(s.runs, fileRun{})
		}
		s.runs[0].n += s.memN
		s.runs[0].size = s.off
		s.mem, s.memN = s.mem[:0], 0
	}
	return nil
}

func (s *spill) open() error {
	if s.file != nil {
		return nil
	}
	f, err := os.CreateTemp(s.dir, "rosterd-spill-*")
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	os.Remove(f.Name()) // gone on close, whatever happens
	s.file, s.w = f, bufio.NewWriterSize(f, 256<<10)
	return nil
}

func (s *spill) write(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.off += int64(len(b))
	return nil
}

// order sorts a keyed spill's records in memory by key; records of equal
// keys keep their order (start ascends with it).
func (s *spill) order() {
	slices.SortFunc(s.recs, func(a, b sortRec) int {
		if a.pre != b.pre {
			return cmp.Compare(a.pre, b.pre)
		}
		if c := bytes.Compare(s.mem[a.start:a.mid], s.mem[b.start:b.mid]); c != 0 {
			return c
		}
		return a.start - b.start
	})
}

// writeRun sorts a keyed spill's records in memory and writes them to its
// file as one run: each record its key, then its fields (encoded as in
// memory), each after its length.
func (s *spill) writeRun() error {
	s.order()
	if err := s.open(); err != nil {
		return err
	}
	run := fileRun{off: s.off, n: len(s.recs)}
	var hdr [binary.MaxVarintLen64]byte
	for _, r := range s.recs {
		n := binary.PutUvarint(hdr[:], uint64(r.mid-r.start))
		s.write(hdr[:n])
		s.write(s.mem[r.start:r.mid])
		n = binary.PutUvarint(hdr[:], uint64(r.end-r.mid))
		s.write(hdr[:n])
		if err := s.write(s.mem[r.mid:r.end]); err != nil {
			return err
		}
	}
	run.size = s.off - run.off
	s.runs = append(s.runs, run)
	s.mem, s.recs, s.memN = s.mem[:0], s.recs[:0], 0
	return nil
}

// each calls fn for every record: an unkeyed spill's in the order added,
// a keyed spill's run by run (each in key order, the last in the order
// added). The fields are valid only during the call.
func (s *spill) each(fn func(f [][]byte) error) error {
	if s == nil || s.n == 0 {
		return nil
	}
	fields := make([][]byte, s.fixed)
	if err := s.flush(); err != nil {
		return err
	}
	for _, run := range s.runs {
		rr := s.runReader(run, 256<<10, 0)
		for {
			ok, err := rr.next()
			if err != nil {
				return fmt.Errorf("spill: %w", err)
			}
			if !ok {
				break
			}
			if err := decodeFields(rr.rec, fields); err != nil {
				return err
			}
			if err := fn(fields); err != nil {
				return err
			}
		}
	}
	return s.eachMem(fields, fn)
}

// eachMem calls fn for the records in memory, in the order added.
func (s *spill) eachMem(fields [][]byte, fn func(f [][]byte) error) error {
	if s.keyed {
		for _, r := range s.recs {
			if err := decodeFields(s.mem[r.mid:r.end], fields); err != nil {
				return err
			}
			if err := fn(fields); err != nil {
				return err
			}
		}
		return nil
	}
	for rest := s.mem; len(rest) > 0; {
		n, err := decodeRecord(rest, fields)
		if err != nil {
			return err
		}
		if err := fn(fields); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func (s *spill) flush() error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	return nil
}

// sorted calls fn for every record of a keyed spill in key order
// (appendKeyOf; records of equal keys in the order added), merging its
// runs. The fields are valid only during the call.
func (s *spill) sorted(fn func(f [][]byte) error) error {
	if s.Len() == 0 {
		return nil
	}
	if !s.keyed {
		return errors.New("spill: sorted on a spill without keys")
	}
	s.order()
	fields := make([][]byte, s.fixed)
	if len(s.runs) == 0 {
		return s.eachMem(fields, fn)
	}
	if err := s.flush(); err != nil {
		return err
	}
	// A binary heap of the runs by their next key, the records in memory
	// as the last run; at most a few hundred runs.
	var h []*runReader
	less := func(a, b *runReader) bool {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c < 0
		}
		return a.idx < b.idx
	}
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			m := l
			if r := l + 1; r < len(h) && less(h[r], h[l]) {
				m = r
			}
			if !less(h[m], h[i]) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	bufSize := max(16<<10, min(256<<10, (8<<20)/len(s.runs)))
	readers := make([]*runReader, 0, len(s.runs)+1)
	for i, run := range s.runs {
		readers = append(readers, s.runReader(run, bufSize, i))
	}
	if len(s.recs) > 0 {
		readers = append(readers, &runReader{mem: s, left: len(s.recs), idx: len(s.runs)})
	}
	for _, rr := range readers {
		ok, err := rr.next()
		if err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		if ok {
			h = append(h, rr)
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		rr := h[0]
		if err := decodeFields(rr.rec, fields); err != nil {
			return err
		}
		if err := fn(fields); err != nil {
			return err
		}
		ok, err := rr.next()
		if err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		if !ok {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
	return nil
}

// runReader reads one run back, a record at a time: from the spill's file,
// or (mem not nil) the keyed records in memory, in their order.
type runReader struct {
	r        *bufio.Reader
	mem      *spill
	keyed    bool
	fields   int // of an unkeyed record
	left     int
	idx      int // the run's number: equal keys keep the runs' order
	key, rec []byte
}

func (s *spill) runReader(run fileRun, bufSize, idx int) *runReader {
	return &runReader{r: bufio.NewReaderSize(io.NewSectionReader(s.file, run.off, run.size), bufSize), keyed: s.keyed, fields: s.fixed, left: run.n, idx: idx}
}

func (rr *runReader) next() (bool, error) {
	if rr.left == 0 {
		return false, nil
	}
	rr.left--
	if s := rr.mem; s != nil {
		r := s.recs[len(s.recs)-rr.left-1]
		rr.key, rr.rec = s.mem[r.start:r.mid], s.mem[r.mid:r.end]
		return true, nil
	}
	if rr.keyed {
		var err error
		if rr.key, err = readLV(rr.r, rr.key); err != nil {
			return false, err
		}
		rr.rec, err = readLV(rr.r, rr.rec)
		return err == nil, err
	}
	// An unkeyed record is its fields, each after its length.
	rr.rec = rr.rec[:0]
	var hdr [binary.MaxVarintLen64]byte
	for range rr.fields {
		n, err := binary.ReadUvarint(rr.r)
		if err != nil {
			return false, err
		}
		rr.rec = append(rr.rec, hdr[:binary.PutUvarint(hdr[:], n)]...)
		start := len(rr.rec)
		rr.rec = slices.Grow(rr.rec, int(n))[:start+int(n)]
		if _, err := io.ReadFull(rr.r, rr.rec[start:]); err != nil {
			return false, err
		}
	}
	return true, nil
}

func readLV(r *bufio.Reader, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	_, err = io.ReadFull(r, buf)
	return buf, err
}

// decodeFields splits an encoded record (each field a uvarint length and
// its bytes) into fields, which point into rec.
func decodeFields(rec []byte, fields [][]byte) error {
	n, err := decodeRecord(rec, fields)
	if err == nil && n != len(rec) {
		err = errors.New("spill: a broken record")
	}
	return err
}

// decodeRecord decodes the record at the start of b into fields and
// returns its length.
func decodeRecord(b []byte, fields [][]byte) (int, error) {
	off := 0
	for i := range fields {
		n, w := binary.Uvarint(b[off:])
		if w <= 0 || uint64(len(b)-off-w) < n {
			return 0, errors.New("spill: a broken record")
		}
		fields[i] = b[off+w : off+w+int(n) : off+w+int(n)]
		off += w + int(n)
	}
	return off, nil
}

// close releases the temporary file.
func (s *spill) close() {
	if s != nil && s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

// appendPairKey appends the key of a pair in the state's membership
// indexes: the length of a as a uvarint, a, then b.
func appendPairKey(dst, a, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(a)))
	dst = append(dst, a...)
	return append(dst, b...)
}

// appendKeyOf appends the sort key of a spill record to dst: for a
// membership (two fields) the state's pair key, else the first field (the
// user id). It is the order of the snapshot's keys.
func appendKeyOf(dst []byte, f [][]byte) []byte {
	if len(f) == 2 {
		return appendPairKey(dst, f[0], f[1])
	}
	return append(dst, f[0]...)
}
