package schema

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

const bufSize = 64 << 10

// errFileTooLarge is returned by sizeReader once more than its limit has
// been read.
var errFileTooLarge = errors.New("file too large")

// sizeReader counts the raw bytes read and fails past a limit, so that an
// oversized upload is stopped while streaming, not after.
type sizeReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (s *sizeReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.n > s.limit {
		return n, errFileTooLarge
	}
	return n, err
}

// encoding names what openText found at the start of a file.
type encoding string

const (
	encUTF8    encoding = "UTF-8"
	encUTF8BOM encoding = "UTF-8 with BOM"
	encUTF16LE encoding = "UTF-16 LE"
	encUTF16BE encoding = "UTF-16 BE"
)

// openText returns a buffered reader of UTF-8 text for r: a UTF-8 BOM is
// skipped, UTF-16 with a BOM is converted (SPEC §4), and old Mac files whose
// lines end in a bare CR get LF line ends. Anything else is passed through
// unchanged; invalid UTF-8 is found later, per row, so that it can be
// reported with its line.
func openText(r io.Reader) (*bufio.Reader, encoding) {
	br := bufio.NewReaderSize(r, bufSize)
	enc := encUTF8
	head, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		br.Discard(3)
		enc = encUTF8BOM
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		dec := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder()
		br = bufio.NewReaderSize(transform.NewReader(br, dec), bufSize)
		enc = encUTF16LE
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		dec := unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM).NewDecoder()
		br = bufio.NewReaderSize(transform.NewReader(br, dec), bufSize)
		enc = encUTF16BE
	}
	// Excel for Mac's "CSV (Macintosh)" ends lines with a bare CR. If the
	// first buffer holds a CR but no LF, read CR as LF.
	if peek, _ := br.Peek(bufSize); bytes.IndexByte(peek, '\n') < 0 && bytes.IndexByte(peek, '\r') >= 0 {
		br = bufio.NewReaderSize(crReader{br}, bufSize)
	}
	return br, enc
}

// crReader turns every CR into LF.
type crReader struct{ r io.Reader }

func (c crReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\r' {
			p[i] = '\n'
		}
	}
	return n, err
}

// detectDelimiter looks at the header line (the first non-blank line of the
// buffered text) and returns the delimiter it shows: comma, or semicolon or
// tab when the header has more of those than commas outside quotes. SPEC §4.
func detectDelimiter(br *bufio.Reader) byte {
	peek, _ := br.Peek(bufSize)
	var commas, semis, tabs int
	inQuote, started := false, false
	for _, b := range peek {
		if b == '"' {
			inQuote = !inQuote
			started = true
			continue
		}
		if inQuote {
			continue
		}
		switch b {
		case '\n', '\r':
			if started {
				goto done
			}
		case ',':
			commas++
		case ';':
			semis++
		case '\t':
			tabs++
		}
		if b != '\n' && b != '\r' && b != ' ' {
			started = true
		}
	}
done:
	switch {
	case semis > commas && semis >= tabs:
		return ';'
	case tabs > commas && tabs > semis:
		return '\t'
	}
	return ','
}
