package ingest

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// Compressed and encrypted uploads (SPEC §4, exports as they come).
//
// An upload's name says how it is wrapped: users.csv.gz is gzip,
// users.csv.gpg, .pgp and armoured .asc are OpenPGP, users.csv.gz.gpg is
// both (outermost last), and a .zip holds the canonical files. The kind
// comes from the name without those suffixes, so the organization's
// patterns apply to it too (users_*.csv matches users_20261122.csv.gpg);
// a pattern that matches the whole name works as well. The archive keeps
// the file as uploaded; the CSV text is decoded from that copy each time
// the batch is read, streamed, and never written out. The size limit
// applies to the decoded text (the checker counts it), and a ratio limit
// (Config.MaxCompressionRatio) stops a small file that expands without end
// (a zip bomb) early, with its own message.
//
// What cannot be decoded is a problem of the file, not a failure of the
// daemon: the decoders' errors become schema.InputErrors, which the
// checker reports as the file's error (the batch is rejected, with a
// report saying why). Only errors of reading the archived copy itself (or
// a shutdown) stay errors, and the batch is retried.

// layer is one wrapping of an upload, from its name.
type layer byte

const (
	layerGzip layer = 'z'
	layerPGP  layer = 'p'
	layerZip  layer = 'Z'
)

// kindZip is the kind of a .zip upload until archiveAndProcess has read
// which canonical files it holds (expandZips).
const kindZip schema.Kind = "zip"

// DefaultMaxCompressionRatio is Config.MaxCompressionRatio's default: CSV
// exports compress 4 to 15 times with gzip; a file that expands 100 times
// is a zip bomb or no export.
const DefaultMaxCompressionRatio = 100

// ratioFloor is the decoded size below which the ratio is not judged:
// tiny files compress unevenly.
const ratioFloor = 1 << 20

// splitName returns an upload's name without its compression and
// encryption suffixes, and those layers outermost first:
// users.csv.gz.gpg is users.csv under [pgp, gzip]. A name ending in .zip
// (under any layer) has layerZip last; a plain name has no layers.
func splitName(name string) (inner string, layers []layer) {
	inner = name
	for len(layers) < 4 {
		lower := strings.ToLower(inner)
		switch {
		case strings.HasSuffix(lower, ".gpg"), strings.HasSuffix(lower, ".pgp"), strings.HasSuffix(lower, ".asc"):
			layers, inner = append(layers, layerPGP), inner[:len(inner)-4]
		case strings.HasSuffix(lower, ".gz"):
			layers, inner = append(layers, layerGzip), inner[:len(inner)-3]
		case strings.HasSuffix(lower, ".zip"):
			return inner, append(layers, layerZip)
		default:
			return inner, layers
		}
	}
	return inner, layers
}

// wrappedKindOf is kindOf for a compressed or encrypted upload: the kind
// of the name without its suffixes, or kindZip.
func (s settings) wrappedKindOf(name string) (schema.Kind, bool) {
	inner, layers := splitName(name)
	switch {
	case len(layers) == 0:
		return "", false
	case layers[len(layers)-1] == layerZip:
		return kindZip, true
	}
	return s.plainKindOf(inner)
}

// csvName is the name a batch file's CSV text goes by in issues: the
// file itself, the file inside a compressed or encrypted upload, or the
// member of a zip.
func csvName(f state.BatchFile) string {
	if f.Inner != "" {
		return f.Inner
	}
	inner, _ := splitName(f.Name)
	return inner
}

// decodeOpts are what decoding an organization's uploads needs.
type decodeOpts struct {
	maxRatio int
	pgp      pgpSettings
}

// openDecoded returns the open func of a batch file archived at path: the
// file itself when it is plain CSV (an *os.File, so that the checker can
// size its tables and seek back), else the CSV text decoded from it. It
// records in f how the file was read, for the batch record and the
// report (f.Decoded is complete once the text has been read to its end:
// a signature is checked there).
func openDecoded(ctx context.Context, path string, f *state.BatchFile, o decodeOpts) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		fh, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		_, layers := splitName(f.Name)
		if len(layers) == 0 && f.Inner == "" {
			return ctxFile{ctxReader{ctx, fh}, fh}, nil
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, err
		}
		d, err := decode(ctx, fh, st.Size(), f, o)
		if err != nil {
			fh.Close()
			return nil, err
		}
		return newReadAhead(d), nil
	}
}

// archived is an archived copy (an *os.File) or a file of a dry run.
type archived interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// decoded is the CSV text of a compressed or encrypted upload.
type decoded struct {
	r      io.Reader
	closer io.Closer
	src    *srcCounter
	f      *state.BatchFile
	out    int64
	size   int64 // the text's size when known (gzip's trailer, a zip member), else -1
	ratio  int64
	parts  []string // how each layer was read, outermost first
}

// decode builds the layers of f's name over src (the archived copy, fh).
func decode(ctx context.Context, fh archived, size int64, f *state.BatchFile, o decodeOpts) (*decoded, error) {
	inner, layers := splitName(f.Name)
	d := &decoded{closer: fh, f: f, size: -1, ratio: int64(o.maxRatio), parts: make([]string, len(layers))}
	if d.ratio <= 0 {
		d.ratio = DefaultMaxCompressionRatio
	}
	d.src = &srcCounter{r: ctxReader{ctx, fh}, ra: fh, ctx: ctx, size: size}
	var r io.Reader = d.src
	member := f.Inner
	f.Inner, f.InnerSize, f.Decoded = inner, 0, ""
	for i, l := range layers {
		switch l {
		case layerZip:
			if i > 0 || member == "" {
				return d.fail(&schema.InputError{Code: schema.CodeUnsupportedFormat,
					Message: msgName(f.Name) + " is a zip archive inside another wrapping, which rosterd does not read: upload the zip as it is, or encrypt or compress each CSV file by itself (users.csv.gpg, users.csv.gz)"}), nil
			}
			f.Inner = member
			zr, size, ierr := openZipMember(d.src, f.Name, member)
			if ierr != nil {
				return d.fail(ierr), nil
			}
			r, d.size = zr, size
			d.parts[i] = "from the zip archive"
		case layerGzip:
			if len(layers) == 1 {
				d.size = gzipSize(fh, size)
			}
			gz, err := newGzipLayer(r, d.src, f.Name)
			if err != nil {
				return d.fail(err), nil
			}
			r = gz
			d.parts[i] = "gzip-compressed"
		case layerPGP:
			pr, err := decryptLayer(r, d.src, f.Name, o.pgp, func(s string) { d.parts[i] = s; d.describe() })
			if err != nil {
				var ie *schema.InputError
				if errors.As(err, &ie) {
					return d.fail(ie), nil
				}
				return nil, err
			}
			r = pr
		}
	}
	d.r = r
	d.describe()
	return d, nil
}

// fail makes d a reader whose first Read returns ie: the checker reports
// it as the file's error.
func (d *decoded) fail(ie *schema.InputError) *decoded {
	d.r = errReader{ie}
	d.describe()
	return d
}

func (d *decoded) describe() {
	var parts []string
	for _, p := range d.parts {
		if p != "" {
			parts = append(parts, p)
		}
	}
	d.f.Decoded = strings.Join(parts, "; ")
}

func (d *decoded) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.out += int64(n)
	d.f.InnerSize = d.out
	if d.out > ratioFloor && d.out > d.ratio*max(d.src.n, 1) {
		return n, &schema.InputError{Code: schema.CodeCompressionRatio, Message: fmt.Sprintf(
			"%s expands more than %d times (%s read from %s so far), more than any CSV export does: it looks like a zip bomb and was not read further. Upload the export as it is, or ask the operator to raise max_compression_ratio",
			msgName(d.f.Name), d.ratio, byteSize(d.out), byteSize(d.src.n))}
	}
	return n, err
}

// Len tells the checker how much text is left when the wrapping says
// (gzip's trailer, a zip member's header), so that it sizes its tables at
// once; -1 when it is not known.
func (d *decoded) Len() int {
	if d.size < 0 {
		return -1
	}
	return int(max(d.size-d.out, 0))
}

func (d *decoded) Close() error { return d.closer.Close() }

// srcCounter reads the archived copy, sequentially or at offsets (a zip),
// counting the bytes read and keeping its reading error: a decoder's error
// after one is that I/O error, not a problem of the file.
type srcCounter struct {
	r    io.Reader
	ra   io.ReaderAt
	ctx  context.Context
	size int64 // of the archived copy
	n    int64
	err  error
}

func (s *srcCounter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *srcCounter) ReadAt(p []byte, off int64) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.ra.ReadAt(p, off)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// sourceErr returns the error to pass on for a decoder's err: the
// archived copy's own reading error, an InputError from a layer below, or
// nil when err is the decoder's verdict on the data.
func (s *srcCounter) sourceErr(err error) error {
	if s.err != nil {
		return s.err
	}
	if errors.As(err, new(*schema.InputError)) {
		return err
	}
	return nil
}

// errReader fails every Read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// layerReader turns a decoder's data errors into InputErrors.
type layerReader struct {
	r    io.Reader
	src  *srcCounter
	what func(err error) *schema.InputError
}

func (l *layerReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	if serr := l.src.sourceErr(err); serr != nil {
		return n, serr
	}
	return n, l.what(err)
}

// newGzipLayer reads gzip (several members in a row are one text, as
// gzip -d gives them).
func newGzipLayer(r io.Reader, src *srcCounter, name string) (io.Reader, *schema.InputError) {
	corrupt := func(err error) *schema.InputError {
		why := "it is damaged or cut off"
		switch {
		case errors.Is(err, gzip.ErrHeader):
			why = "it is not gzip data"
		case errors.Is(err, gzip.ErrChecksum):
			why = "its checksum does not match: it is damaged"
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			why = "it ends too early: the upload was cut off"
		}
		return &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf(
			"%s cannot be decompressed: %s. Compress the CSV file again with gzip and upload it (or upload it uncompressed as a .csv)", msgName(name), why)}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	zr, err := gzip.NewReader(br)
	if err != nil {
		if serr := src.sourceErr(err); serr != nil {
			return errReader{serr}, nil
		}
		return nil, corrupt(err)
	}
	return &layerReader{r: zr, src: src, what: corrupt}, nil
}

// gzipSize reads the size of the text from a gzip file's trailer (the
// last four bytes: the size modulo 4 GiB, of the last member), or -1.
// It only sizes the checker's tables: a wrong value costs a grow.
func gzipSize(ra io.ReaderAt, size int64) int64 {
	if size < 18 {
		return -1
	}
	var b [4]byte
	if _, err := ra.ReadAt(b[:], size-4); err != nil {
		return -1
	}
	return int64(binary.LittleEndian.Uint32(b[:]))
}

// msgName is an upload's name for a message.
func msgName(name string) string { return path.Base(name) }

// byteSize writes n for a person: 1.2 GB, 340 KB.
func byteSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

// reportFile is a batch file as its report lists it.
func reportFile(f state.BatchFile) report.File {
	return report.File{Name: f.Name, Kind: schema.Kind(f.Kind), Size: f.Size, SHA256: f.SHA256, Rows: f.Rows,
		Inner: f.Inner, InnerSize: f.InnerSize, Decoded: f.Decoded}
}

// readAhead decodes on a goroutine of its own, a few buffers ahead of
// the reader: decompressing and decrypting cost about as much CPU as the
// checker's own reading, and would otherwise lengthen its reading
// goroutine, which the whole pipeline waits on. Memory: aheadBufs buffers
// of aheadSize. Close stops the goroutine and waits for it, so that
// nothing reads the archived copy afterwards, and the decoded file's
// description (BatchFile.Decoded, InnerSize) is complete and safe to
// read once Close has returned.
type readAhead struct {
	d    *decoded
	full chan aheadBuf
	free chan []byte
	stop chan struct{}
	done chan struct{}
	buf  []byte // the buffer being read, to give back
	cur  []byte // its unread part
	err  error  // what ended the text, once reached
	n    int64  // bytes given to the reader
	size int64  // the text's size when known, else -1
	once sync.Once
}

type aheadBuf struct {
	b   []byte
	err error
}

const (
	aheadBufs = 4
	aheadSize = 256 << 10
)

func newReadAhead(d *decoded) *readAhead {
	r := &readAhead{d: d, size: d.size, full: make(chan aheadBuf, aheadBufs), free: make(chan []byte, aheadBufs),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range aheadBufs {
		r.free <- make([]byte, aheadSize)
	}
	go r.run()
	return r
}

func (r *readAhead) run() {
	defer close(r.done)
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.stop:
			return
		}
		n := 0
		var err error
		for n < len(b) && err == nil {
			var k int
			k, err = r.d.Read(b[n:])
			n += k
		}
		select {
		case r.full <- aheadBuf{b[:n], err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *readAhead) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.buf != nil {
			r.free <- r.buf[:cap(r.buf)] // never blocks: aheadBufs places
		}
		ab := <-r.full
		r.buf, r.cur, r.err = ab.b, ab.b, ab.err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.n += int64(n)
	return n, nil
}

// Len tells the checker how much text is left when the wrapping says
// (see decoded.Len); -1 when it is not known.
func (r *readAhead) Len() int {
	if r.size < 0 {
		return -1
	}
	return int(max(r.size-r.n, 0))
}

// Close stops the decoding goroutine, waits for it and closes the file.
func (r *readAhead) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return r.d.Close()
}
