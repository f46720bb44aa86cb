package schema

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode"
	"unicode/utf8"
)

// The reader below follows the algorithm of encoding/csv (read a physical
// line with ReadSlice, find delimiters and quotes with IndexByte) and
// differs where real exports need it or where bounded memory needs it:
//
//   - no string is allocated per record: fields are offsets into one
//     reused buffer, and the caller converts only what it keeps;
//   - a field is never buffered past the field size limit, and a physical
//     line never past the line limit, so an unterminated quote in a 1 GiB
//     file costs at most one field of memory;
//   - a quote inside an unquoted field is kept as a character (John "Jack"
//     Smith), spaces around a quoted field are allowed, and every value is
//     trimmed of white space (SPEC §4);
//   - the physical line of every field is known without extra work.

// errLineTooLong stops reading: a physical line is longer than any valid
// record could be.
var errLineTooLong = errors.New("line too long")

// problem is what made a record unreadable.
type problem int

const (
	probNone         problem = iota
	probQuote                // text after a closing quote
	probUnterminated         // a quoted field that never ends
	probFieldTooLong         // a field longer than the limit
)

// field locates one value in record.buf, trimmed.
type field struct {
	start, end int
	line       int // physical line where the field starts
}

// record is one CSV record; it is reused by the reader.
type record struct {
	line    int // physical line where the record starts
	buf     []byte
	fields  []field
	problem problem
	probAt  int  // index of the field with the problem
	probLn  int  // physical line of the problem
	valid   bool // buf is UTF-8 (set by the pipe's reading goroutine)
}

func (r *record) value(i int) []byte { f := r.fields[i]; return r.buf[f.start:f.end] }

// blank reports whether every field is empty.
func (r *record) blank() bool { return blank(r.fields) }

type reader struct {
	br       *bufio.Reader
	delim    byte
	line     int   // physical lines consumed
	pos      int64 // bytes consumed (of the decoded text)
	maxField int
	maxLine  int
	raw      []byte
	rec      record

	// keep makes next append each record to rec.buf and rec.fields
	// instead of replacing the previous one (pipe.go fills chunks so);
	// the record then starts at base and fbase, and its field offsets
	// are relative to base.
	keep        bool
	base, fbase int

	slow bool // never read a line the quick way (plainLine); for tests

	// date, when not nil, is the organization's date format: in keep
	// mode, the value of field dateCol of each record is rewritten as
	// YYYY-MM-DD when it is a date in that format (convertDate).
	date    *dateLayout
	dateCol int
}

// readLine returns the next physical line without its line end, whether it
// had one, and io.EOF only when nothing was left.
func (r *reader) readLine() ([]byte, bool, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.raw = append(r.raw[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(r.raw) > r.maxLine {
				r.line++
				return nil, false, errLineTooLong
			}
			line, err = r.br.ReadSlice('\n')
			r.raw = append(r.raw, line...)
		}
		line = r.raw
	}
	if len(line) == 0 {
		if err == nil {
			err = io.EOF
		}
		return nil, false, err
	}
	if err == io.EOF {
		err = nil
	}
	r.pos += int64(len(line))
	r.line++
	nl := false
	if n := len(line); line[n-1] == '\n' {
		nl = true
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nl, err
}

func (r *reader) isSpace(b byte) bool {
	return b == ' ' || (b == '\t' && r.delim != '\t')
}

// next reads the next record that is not a blank line into r.rec. It
// returns io.EOF at the end, errLineTooLong, or the underlying read error.
// A record that cannot be read has rec.problem set; its fields up to the
// problem are filled.
func (r *reader) next() error {
	rec := &r.rec
	if !r.keep {
		rec.buf = rec.buf[:0]
		rec.fields = rec.fields[:0]
	}
	r.base, r.fbase = len(rec.buf), len(rec.fields)
	rec.problem = probNone
	var line []byte
	var nl bool
	var err error
	for {
		line, nl, err = r.readLine()
		if err != nil && len(line) == 0 {
			return err
		}
		if len(bytes.TrimSpace(line)) > 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	rec.line = r.line
	if !r.slow && bytes.IndexByte(line, '"') < 0 && r.plainLine(line) {
		return ignoreEOF(err)
	}
	for {
		i := 0
		for i < len(line) && r.isSpace(line[i]) {
			i++
		}
		start := len(rec.buf)
		fline := r.line
		if i < len(line) && line[i] == '"' {
			line = line[i+1:]
			tooLong := false
			for {
				j := bytes.IndexByte(line, '"')
				if j < 0 {
					tooLong = r.add(start, line, tooLong)
					if nl {
						tooLong = r.add(start, []byte{'\n'}, tooLong)
					}
					if err != nil || !nl {
						r.fail(probUnterminated, fline)
						return err
					}
					line, nl, err = r.readLine()
					if err != nil && len(line) == 0 && !nl {
						r.fail(probUnterminated, fline)
						if err == io.EOF {
							return nil
						}
						return err
					}
					continue
				}
				tooLong = r.add(start, line[:j], tooLong)
				line = line[j+1:]
				if len(line) > 0 && line[0] == '"' {
					tooLong = r.add(start, line[:1], tooLong)
					line = line[1:]
					continue
				}
				break
			}
			k := 0
			for k < len(line) && r.isSpace(line[k]) {
				k++
			}
			r.finish(start, fline)
			if tooLong {
				r.fail(probFieldTooLong, fline)
			}
			if k == len(line) {
				return ignoreEOF(err)
			}
			if line[k] != r.delim {
				r.fail(probQuote, r.line)
				return ignoreEOF(err)
			}
			line = line[k+1:]
			r.rec.buf = append(r.rec.buf, r.delim)
			continue
		}
		j := bytes.IndexByte(line, r.delim)
		f := line
		if j >= 0 {
			f = line[:j]
		}
		if r.add(start, f, false) {
			r.finish(start, fline)
			r.fail(probFieldTooLong, fline)
		} else {
			r.finish(start, fline)
		}
		if j < 0 {
			return ignoreEOF(err)
		}
		line = line[j+1:]
		r.rec.buf = append(r.rec.buf, r.delim)
	}
}

// plainLine reads line, the whole of a record that has no quote, in one
// copy: the fields are found in place. The values and the bytes kept are
// those of the field-by-field way (the line as it was, delimiters
// included). It returns false, having kept nothing, when a field is longer
// than the limit: next then reads the line field by field.
func (r *reader) plainLine(line []byte) bool {
	rec := &r.rec
	base, fbase := len(rec.buf), len(rec.fields)
	rec.buf = append(rec.buf, line...)
	b := rec.buf[base:]
	off := base - r.base // where line starts, relative to the record
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], r.delim)
		end := len(b)
		if j >= 0 {
			end = i + j
		}
		if end-i > r.maxField {
			rec.buf, rec.fields = rec.buf[:base], rec.fields[:fbase]
			return false
		}
		start, stop := trimField(b, i, end)
		rec.fields = append(rec.fields, field{start: off + start, end: off + stop, line: r.line})
		if j < 0 {
			return true
		}
		i = end + 1
	}
}

func ignoreEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// add appends b to the field that starts at start, up to the field limit.
// It reports whether the field is (now) too long.
func (r *reader) add(start int, b []byte, tooLong bool) bool {
	if tooLong {
		return true
	}
	if room := r.maxField - (len(r.rec.buf) - start); len(b) > room {
		r.rec.buf = append(r.rec.buf, b[:max(room, 0)]...)
		return true
	}
	r.rec.buf = append(r.rec.buf, b...)
	return false
}

// finish ends the field that starts at start, trimming white space.
func (r *reader) finish(start, line int) {
	start, end := trimField(r.rec.buf, start, len(r.rec.buf))
	r.rec.fields = append(r.rec.fields, field{start: start - r.base, end: end - r.base, line: line})
}

// trimField returns the bounds of b[start:end] without the white space
// (and byte-order marks) at either end.
func trimField(b []byte, start, end int) (int, int) {
	if start == end {
		return start, end
	}
	// Most values start and end with an ASCII letter or digit.
	if c, d := b[start], b[end-1]; c < utf8.RuneSelf && d < utf8.RuneSelf && !asciiSpace(c) && !asciiSpace(d) {
		return start, end
	}
	for start < end {
		c, size := b[start], 1
		if c >= utf8.RuneSelf {
			var ru rune
			ru, size = utf8.DecodeRune(b[start:end])
			if !unicode.IsSpace(ru) && ru != '\uFEFF' {
				break
			}
		} else if !asciiSpace(c) {
			break
		}
		start += size
	}
	for start < end {
		c, size := b[end-1], 1
		if c >= utf8.RuneSelf {
			var ru rune
			ru, size = utf8.DecodeLastRune(b[start:end])
			if !unicode.IsSpace(ru) && ru != '\uFEFF' {
				break
			}
		} else if !asciiSpace(c) {
			break
		}
		end -= size
	}
	return start, end
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (r *reader) fail(p problem, line int) {
	if r.rec.problem != probNone {
		return
	}
	r.rec.problem = p
	r.rec.probAt = len(r.rec.fields) - r.fbase - 1
	if p == probUnterminated {
		r.rec.probAt = len(r.rec.fields) - r.fbase
	}
	r.rec.probLn = line
}
