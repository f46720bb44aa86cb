package schema

import (
	"io"
	"io/fs"
)

// estimateAfter is the row after which a file's row count is estimated
// from its size and the bytes per row so far.
const estimateAfter = 1024

// remaining returns the number of bytes left to read in r when r can tell
// (a Len method, as bytes.Reader and strings.Reader have; a Stat method, as
// *os.File has; or Seek), else -1. A Seek-only reader is left where it was.
func remaining(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case interface{ Stat() (fs.FileInfo, error) }:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		n := fi.Size()
		if sk, ok := r.(io.Seeker); ok {
			off, err := sk.Seek(0, io.SeekCurrent)
			if err != nil {
				return -1
			}
			n -= off
		}
		return max(n, 0)
	case io.Seeker:
		cur, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		end, err := v.Seek(0, io.SeekEnd)
		if _, err2 := v.Seek(cur, io.SeekStart); err != nil || err2 != nil {
			return -1
		}
		return max(end-cur, 0)
	}
	return -1
}

// estimate returns how many rows the file probably has in all, from its
// size and the bytes per row of the rows read so far (with a tenth more
// for rows longer than the first ones), or 0 when its size is unknown.
// It sizes tables only: a wrong estimate costs a grow or unused slots,
// never a result.
func (s *scan) estimate(rows int) int {
	body := s.pos - s.headerEnd
	if s.size <= s.pos || rows <= 0 || body <= 0 {
		return 0
	}
	left := float64(s.size-s.pos) * float64(rows) / float64(body)
	return rows + int(left*1.1)
}
