package ingest

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"syscall"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// An SFTP client may write at any offset: one byte at 256 MiB makes a
// file of 256 MiB that takes 4 KiB on disk, the rest a hole. Copied byte
// by byte into the archive it would take 256 MiB there, kept with the
// batch, so that any organization could add a gigabyte of disk per tiny
// request (issue 12, case 3). So the archive copy keeps the holes
// (copySparse), costing what the upload cost; and a file with a hole is
// rejected with a clear issue (sparseIssues): a CSV export writes every
// byte, and a hole reads as zero bytes, which no valid file holds.

// Whence values of lseek(2) that find data and holes (Linux, the BSDs,
// macOS and illumos agree on them).
const (
	seekData = 3
	seekHole = 4
)

// zeros is hashed in place of a hole's bytes.
var zeros = make([]byte, 1<<20)

// copySparse copies the size bytes of in to out, writing only the data
// regions and leaving the holes as holes, and feeds the whole content
// (zeros for the holes) to h. A file system that cannot tell data from
// holes has none to report: the file is copied whole. buf is the copy
// buffer.
func copySparse(out, in *os.File, size int64, h hash.Hash, buf []byte) error {
	w := io.MultiWriter(out, h)
	for off := int64(0); off < size; {
		data, hole, err := nextData(in, off, size)
		if err != nil {
			return err
		}
		if data > off {
			if err := hashZeros(h, data-off); err != nil {
				return err
			}
		}
		if data >= size {
			break
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(w, io.NewSectionReader(in, data, hole-data), buf); err != nil {
			return err
		}
		off = hole
	}
	// A hole at the end is made by the size; the rest by the seeks.
	return out.Truncate(size)
}

// nextData returns where the next data region from off starts and ends
// (size when none is left).
func nextData(f *os.File, off, size int64) (data, hole int64, err error) {
	data, err = f.Seek(off, seekData)
	switch {
	case errors.Is(err, syscall.ENXIO):
		return size, size, nil // only a hole is left
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.EOPNOTSUPP):
		return off, size, nil // holes not supported: all data
	case err != nil:
		return 0, 0, err
	}
	hole, err = f.Seek(data, seekHole)
	if err != nil {
		return 0, 0, err
	}
	return data, min(hole, size), nil
}

func hashZeros(h hash.Hash, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := h.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// holesOf returns the bytes of path that lie in holes, and where the
// first hole starts.
func holesOf(path string) (total, first int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := st.Size()
	first = -1
	for off := int64(0); off < size; {
		data, hole, err := nextData(f, off, size)
		if err != nil {
			return 0, 0, err
		}
		if data > off {
			if first < 0 {
				first = off
			}
			total += data - off
		}
		off = hole
	}
	return total, first, nil
}

// codeSparseFile is the issue code of a file with holes.
const codeSparseFile = "sparse_file"

// sparseIssues returns an error issue for each archived file of b that
// has holes.
func sparseIssues(dir string, files []state.BatchFile) []schema.Issue {
	var out []schema.Issue
	for _, f := range files {
		total, first, err := holesOf(archivedFile(dir, f))
		if err != nil || total == 0 {
			continue
		}
		out = append(out, schema.Issue{
			File: f.Name, Code: codeSparseFile, Severity: schema.SeverityError,
			Message: fmt.Sprintf("%s of this file were never written (the first gap starts at byte %d): the upload skipped over them, so the file holds zero bytes there, which no CSV export does. Upload the whole file again",
				sizeText(total), first),
		})
	}
	return out
}
