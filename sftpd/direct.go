package sftpd

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"

	"github.com/pkg/sftp"
)

// Direct writes. pkg/sftp's request server passes every request through a
// chain of goroutines: its reader, a dispatcher, a worker and the packet
// manager that puts the replies in request order. When the client is
// slower than the server (paramiko, JSch: each bound by its own CPU),
// every hand-off finds the next goroutine asleep and wakes a thread, and
// on a machine of two cores that CPU is taken from the client.
//
// So the framer applies a WRITE to an upload itself, in the goroutine that
// reads the channel, when pkg/sftp has no request in flight (which is all
// the time while a file streams in): it calls the upload's WriteAt with
// the data in place in its read buffer and queues the STATUS reply. The
// queued replies are written, as one channel write, before the framer
// waits for more input and before it hands pkg/sftp a request, so replies
// keep request order. Any request in flight in pkg/sftp (a read, a stat, a
// close) sends the writes behind it through pkg/sftp, ordered by order, as
// before. The writes of a handle are then applied one at a time in the
// order sent, as OpenSSH's sftp-server applies them, and the upload's
// hash is fed in order.
//
// pkg/sftp still opens and closes every handle. The framer learns which
// upload a handle writes from the HANDLE reply to a writing OPEN: pkg/sftp
// opens files one at a time, in request order, and answers in request
// order, so the replies to writing OPENs that succeeded come in the order
// the uploads were opened (uploadClaimer). A writing OPEN the framer could
// not parse would break that correspondence: from then on the session
// writes through pkg/sftp only (order.noDirect).

// uploadClaimer hands the framer the uploads that writing OPENs made, in
// the order they were opened: the session's orgFS.
type uploadClaimer interface {
	// claimUpload takes the oldest upload whose HANDLE reply the framer
	// has not seen, and returns it if it is the one the OPEN of path
	// with pflags made; else nil.
	claimUpload(path string, pflags uint32) io.WriterAt
}

// maxReplyBatch bounds the replies to direct writes the framer holds
// before writing them.
const maxReplyBatch = 32 << 10

// directWrite reports whether the WRITE request just parsed, with dataLen
// bytes of data as the rest of its packet, is applied by the framer; if
// so, it reads the data, writes it and queues the reply.
func (f *framer) directWrite(id uint32, handle []byte, off int64, dataLen uint32) (bool, error) {
	// Longer writes than announced in limits@openssh.com go to pkg/sftp,
	// which refuses packets over its limit.
	if f.uploads == nil || dataLen != f.remain || dataLen > maxData || f.inflight.Load() != 0 {
		return false, nil
	}
	w, off := f.order.direct(handle, off, int64(dataLen))
	if w == nil {
		return false, nil
	}
	return true, f.writeDirect(id, w, off)
}

// writeDirect applies the data of the WRITE request id (f.remain bytes,
// still to be read) to w at off and queues the reply.
func (f *framer) writeDirect(id uint32, w io.WriterAt, off int64) error {
	n := int(f.remain)
	var data []byte
	var err error
	inPlace := n <= f.in.Size()
	if inPlace {
		data, err = f.in.Peek(n)
	} else {
		if cap(f.dbuf) < n {
			f.dbuf = make([]byte, n)
		}
		data = f.dbuf[:n]
		_, err = io.ReadFull(f.in, data)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	_, werr := w.WriteAt(data, off)
	if inPlace {
		f.in.Discard(n)
	}
	f.remain = 0
	f.out = appendStatus(f.out, id, werr)
	if len(f.out) >= maxReplyBatch {
		return f.flush()
	}
	return nil
}

// ready writes the queued replies when fewer than n bytes of input are
// buffered: the framer is about to wait for the client, which may be
// waiting for them.
func (f *framer) ready(n int) error {
	if len(f.out) > 0 && f.in.Buffered() < n {
		return f.flush()
	}
	return nil
}

// flush writes the queued replies to direct writes. Called by the reader
// goroutine only.
func (f *framer) flush() error {
	if len(f.out) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.outLeft > 0 || f.outHdrN > 0 {
		// Not expected (pkg/sftp has nothing in flight while replies
		// are queued), but never split one of its packets.
		f.injected = append(f.injected, slices.Clone(f.out))
	} else {
		_, err = f.rw.Write(f.out)
	}
	f.out = f.out[:0]
	if err != nil {
		f.order.stop()
	}
	return err
}

// statusCodes are the SFTP status codes of the errors an upload's WriteAt
// returns (see status), as pkg/sftp finds them.
var statusCodes = []struct {
	err  error
	code uint32
}{
	{sftp.ErrSSHFxEOF, 1},
	{sftp.ErrSSHFxNoSuchFile, 2},
	{sftp.ErrSSHFxPermissionDenied, 3},
	{sftp.ErrSSHFxFailure, 4},
	{sftp.ErrSSHFxOpUnsupported, 8},
}

// appendStatus appends an SSH_FXP_STATUS reply for err (nil: SSH_FX_OK)
// to b as pkg/sftp writes it: the code, err's message and an empty
// language tag.
func appendStatus(b []byte, id uint32, err error) []byte {
	var code uint32
	var msg string
	if err != nil {
		code, msg = 4, err.Error()
		for _, c := range statusCodes {
			if errors.Is(err, c.err) {
				code = c.code
				break
			}
		}
	}
	start := len(b)
	b = append(b, 0, 0, 0, 0, fxpStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, code)
	b = appendString(b, []byte(msg))
	b = binary.BigEndian.AppendUint32(b, 0) // language tag
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}
