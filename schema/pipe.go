package schema

import "unicode/utf8"

// pipe reads the data rows of a file on a second goroutine, so that
// reading (line ends, delimiters, quotes, trimming, the UTF-8 check) and
// checking use two cores. The reading goroutine fills chunks of records
// and hands them over a channel; the checking goroutine (the caller's)
// walks a chunk's records in place and gives the chunk back. Memory is
// pipeChunks chunks of about chunkBytes each, whatever the file's size.
//
// The reading goroutine is the only user of the reader (and so of the
// io.Reader given to the Checker) from the first data row until close
// returns: close stops it and waits for it, so nothing reads the caller's
// reader after Users, UserGroups or Groups return.
type pipe struct {
	full chan *chunk
	free chan *chunk
	stop chan struct{}
	done chan struct{}
	cur  *chunk
	next int // index in cur.recs of the next record
	base int // where the values of the record read last start in cur.buf
}

const (
	pipeChunks = 3       // one being read, one being checked, one waiting
	chunkBytes = 1 << 18 // bytes of values a chunk holds (a record more at most)
	chunkRecs  = 4096
)

// chunk is a run of records: their values in buf and fields, one after the
// other, as the reader's keep mode lays them out.
type chunk struct {
	buf    []byte
	fields []field
	recs   []chunkRec
	err    error // what stopped reading after recs, nil while more follow
	errLn  int   // the reader's physical line at err

	// text is buf as a string, made by the checking goroutine the first
	// time a row of the chunk is given to a callback (see pipe.text).
	text    string
	hasText bool
}

type chunkRec struct {
	line           int
	base, end      int // its values are buf[base:end]
	fbase, fend    int // its fields are fields[fbase:fend]
	problem        problem
	probAt, probLn int
	valid          bool
	pos            int64 // bytes read up to its end
}

// startPipe starts the reading goroutine on rd, whose header has been read.
func startPipe(rd *reader) *pipe {
	p := &pipe{
		full: make(chan *chunk, pipeChunks),
		free: make(chan *chunk, pipeChunks),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range pipeChunks {
		p.free <- &chunk{}
	}
	rd.keep = true
	go p.run(rd)
	return p
}

// run fills free chunks with the records of rd until the end of the file,
// a reading error or stop. Blank records are dropped here.
func (p *pipe) run(rd *reader) {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		var ch *chunk
		select {
		case ch = <-p.free:
		case <-p.stop:
			return
		}
		rd.rec.buf, rd.rec.fields = ch.buf[:0], ch.fields[:0]
		ch.recs = ch.recs[:0]
		ch.text, ch.hasText = "", false
		for len(rd.rec.buf) < chunkBytes && len(ch.recs) < chunkRecs {
			err := rd.next()
			rec := &rd.rec
			if err != nil {
				rec.buf, rec.fields = rec.buf[:rd.base], rec.fields[:rd.fbase]
				ch.err, ch.errLn = err, rd.line
				break
			}
			if rec.problem == probNone && blank(rec.fields[rd.fbase:]) {
				rec.buf, rec.fields = rec.buf[:rd.base], rec.fields[:rd.fbase]
				continue
			}
			if rd.date != nil && rec.problem == probNone {
				rd.convertDate()
			}
			ch.recs = append(ch.recs, chunkRec{
				line: rec.line, base: rd.base, end: len(rec.buf), fbase: rd.fbase, fend: len(rec.fields),
				problem: rec.problem, probAt: rec.probAt, probLn: rec.probLn,
				valid: utf8.Valid(rec.buf[rd.base:]), pos: rd.pos,
			})
		}
		ch.buf, ch.fields = rd.rec.buf, rd.rec.fields
		select {
		case p.full <- ch:
		case <-p.stop:
			return
		}
		if ch.err != nil {
			return
		}
	}
}

// read sets rec to the next record and pos to the bytes read up to its
// end. At the end of the file or on a reading error it returns the error
// (io.EOF at the end) and the reader's physical line at that point.
func (p *pipe) read(rec *record, pos *int64) (errLine int, err error) {
	for p.cur == nil || p.next == len(p.cur.recs) {
		if p.cur != nil {
			if p.cur.err != nil {
				return p.cur.errLn, p.cur.err
			}
			p.free <- p.cur // never blocks: there are pipeChunks places
		}
		p.cur, p.next = <-p.full, 0
	}
	r := &p.cur.recs[p.next]
	p.next++
	p.base = r.base
	*rec = record{
		line: r.line, buf: p.cur.buf[r.base:r.end:r.end], fields: p.cur.fields[r.fbase:r.fend:r.fend],
		problem: r.problem, probAt: r.probAt, probLn: r.probLn, valid: r.valid,
	}
	*pos = r.pos
	return 0, nil
}

// text returns the values of the record read last as one string, from
// which a value at field offsets start:end is text[start:end]. The string
// is made once per chunk (about chunkBytes) rather than once per row: a
// million allocations fewer per million rows, for the callbacks' strings.
// A caller that keeps one value keeps its chunk's text with it.
func (p *pipe) text() string {
	ch := p.cur
	if !ch.hasText {
		ch.text, ch.hasText = string(ch.buf), true
	}
	return ch.text[p.base:]
}

// close stops the reading goroutine and waits until it has returned.
func (p *pipe) close() {
	close(p.stop)
	<-p.done
}

// blank reports whether every field is empty: Excel writes rows of bare
// delimiters for empty rows; SPEC §4 skips blank lines.
func blank(fields []field) bool {
	for _, f := range fields {
		if f.end > f.start {
			return false
		}
	}
	return true
}
