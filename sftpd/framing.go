package sftpd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// SFTP packet types and extension names the framer handles itself.
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpFstat         = 8
	fxpSetstat       = 9
	fxpFsetstat      = 10
	fxpRemove        = 13
	fxpRename        = 18
	fxpStatus        = 101
	fxpHandle        = 102
	fxpExtended      = 200
	fxpExtendedReply = 201

	fxfAppend = 0x04 // SSH_FXF_APPEND
	// SSH_FXF_WRITE, APPEND, CREAT, TRUNC: pkg/sftp opens an upload for
	// any of them
	fxfWriting = 0x02 | fxfAppend | 0x08 | 0x10

	extLimits      = "limits@openssh.com"
	extFsync       = "fsync@openssh.com"
	extPosixRename = "posix-rename@openssh.com"
	sftpVersion    = 3
	maxControlPkt  = 64 << 10 // small requests are read whole up to this size
	maxHandleLen   = 256      // longest handle the framer parses (pkg/sftp's are decimal numbers)
	maxOpenHandles = 256
)

// extensions are announced in SSH_FXP_VERSION. hardlink@openssh.com is
// deliberately absent (links are refused); pkg/sftp implements the first
// two, the framer the last two.
var extensions = [][2]string{
	{extPosixRename, "1"},
	{"statvfs@openssh.com", "2"},
	{extFsync, "1"},
	{extLimits, "1"},
}

// wholeTypes are the request types the framer reads whole to order them
// (see order) or to answer them; all are small.
var wholeTypes = [256]bool{
	fxpInit: true, fxpOpen: true, fxpClose: true, fxpRead: true, fxpFstat: true,
	fxpSetstat: true, fxpFsetstat: true, fxpRemove: true, fxpRename: true, fxpExtended: true,
}

// framer sits between the SSH channel and pkg/sftp's request server and
// adds what pkg/sftp v1.13 lacks, without copying file data:
//
//   - SSH_FXP_INIT is answered here, announcing limits@openssh.com and
//     fsync@openssh.com besides pkg/sftp's extensions;
//   - limits@openssh.com is answered here, so OpenSSH clients write and
//     read 255 KiB per request instead of 32 KiB;
//   - fsync@openssh.com is rewritten into an SSH_FXP_FSETSTAT with no
//     attributes on the same handle, which the handlers treat as "sync
//     this file";
//   - requests are held back until the earlier requests they depend on
//     are answered, and writes on append handles get their offsets, so
//     that requests take effect in the order the client sent them (see
//     order);
//   - a WRITE to an upload is applied here when pkg/sftp has no request
//     in flight (see direct.go).
//
// Of another WRITE only the header up to the data length is parsed here;
// the data passes through into pkg/sftp's buffer. Other small requests
// are read whole; everything else passes through. The channel is read
// through a buffer (see readBufferSize).
type framer struct {
	rw      io.ReadWriteCloser
	in      *bufio.Reader // rw's read side, read in large chunks (see readBufferSize)
	order   *order
	uploads uploadClaimer // the session's uploads; nil: no direct writes

	hold, release func() // see newFramer

	inflight atomic.Int32 // requests handed to pkg/sftp and not answered yet

	// read side, used only by pkg/sftp's single reader goroutine
	hdr    [5]byte
	wbuf   [5 + 8 + maxHandleLen + 12]byte // a WRITE's header, handle, offset and length
	rbuf   []byte                          // a request read whole
	pend   []byte                          // bytes to hand out before reading rw again
	remain uint32                          // body bytes of the current packet still to pass through
	out    []byte                          // replies to direct writes not written yet
	dbuf   []byte                          // data of a direct write larger than in's buffer

	// write side
	mu        sync.Mutex
	outHdr    [9]byte // length, type and id of the packet being written
	outHdrN   int
	outLeft   uint32              // bytes of the current outgoing packet still to come
	outBody   []byte              // the start of a HANDLE reply's body (its handle)
	wantBody  bool                // collect outBody for the current packet
	injected  [][]byte            // replies waiting for a packet boundary
	closes    map[uint32]struct{} // ids of CLOSE requests awaiting a reply
	closesOut int                 // CLOSE replies in the bytes being written, released after the write
}

// readBufferSize is how much of the client's input the framer reads from
// the channel at once. x/crypto's channel grants the client more window
// after every Read that leaves it short by more than three packets, with
// an SSH message for each: reading a request's header, handle and offset
// in small reads sent several window adjustments per 32 KiB write, each
// one encrypted and written by the server and decrypted and checked by
// the client (JSch and paramiko, whose SSH layers are slow per packet,
// felt it most). Read through this buffer, a window adjustment covers up
// to this much data, about as often as OpenSSH's sshd sends them. It
// costs a copy of the data (memmove, cheap beside the decryption).
//
// The buffer also holds a whole 32 KiB write, so that a direct write (see
// direct.go) reads its data in place.
const readBufferSize = 64 << 10

// newFramer returns a framer over the channel rw. hold and release
// (optional) count SSH_FXP_CLOSE requests from the moment they are read
// until their reply is written, for Shutdown.
func newFramer(rw io.ReadWriteCloser, hold, release func()) *framer {
	return &framer{rw: rw, in: bufio.NewReaderSize(rw, readBufferSize), order: newOrder(), hold: hold, release: release}
}

func (f *framer) Close() error {
	f.order.stop()
	return f.rw.Close()
}

// errSessionOver is returned by Read when the session ended while a
// request waited for the ones before it.
var errSessionOver = errors.New("sftp session over")

func (f *framer) Read(p []byte) (int, error) {
	n, err := f.read(p)
	if err != nil {
		f.flush() // the replies to the last direct writes, if the channel still takes them
	}
	return n, err
}

func (f *framer) read(p []byte) (int, error) {
	for {
		if len(f.pend) > 0 || f.remain > 0 {
			// A request for pkg/sftp: the replies to the direct writes
			// before it go first.
			if err := f.flush(); err != nil {
				return 0, err
			}
		}
		if len(f.pend) > 0 {
			n := copy(p, f.pend)
			f.pend = f.pend[n:]
			return n, nil
		}
		if f.remain > 0 {
			if uint32(len(p)) > f.remain {
				p = p[:f.remain]
			}
			n, err := f.in.Read(p)
			f.remain -= uint32(n)
			return n, err
		}
		if err := f.ready(len(f.hdr)); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(f.in, f.hdr[:]); err != nil {
			return 0, err
		}
		length := binary.BigEndian.Uint32(f.hdr[:4])
		typ := f.hdr[4]
		if length > 0 {
			if err := f.ready(int(min(length-1, maxControlPkt))); err != nil {
				return 0, err
			}
		}
		switch {
		case length > 1 && typ == fxpWrite:
			if err := f.readWrite(length - 1); err != nil {
				return 0, err
			}
		case length > 0 && length <= maxControlPkt && wholeTypes[typ]:
			if cap(f.rbuf) < int(4+length) {
				f.rbuf = make([]byte, 4+length)
			}
			pkt := f.rbuf[:4+length]
			copy(pkt, f.hdr[:])
			if _, err := io.ReadFull(f.in, pkt[5:]); err != nil {
				return 0, err
			}
			if err := f.control(pkt); err != nil {
				return 0, err
			}
		default:
			// pkg/sftp rejects bad lengths itself.
			if typ == fxpOpen {
				f.order.stopDirect() // an OPEN not followed: see direct.go
			}
			f.pend = f.hdr[:]
			if length > 0 {
				f.remain = length - 1
			}
		}
		if len(f.pend) > 0 {
			f.inflight.Add(1) // a request handed to pkg/sftp
		}
	}
}

// readWrite reads a WRITE request up to its data (id, handle, offset,
// data length), orders it, and leaves the data to pass through. body is
// the packet length without the type byte.
func (f *framer) readWrite(body uint32) error {
	b := f.wbuf[:]
	copy(b, f.hdr[:])
	const fixed = 8 + 12 // id and handle length; offset and data length
	if body < fixed {
		f.pend, f.remain = b[:5], body
		return nil
	}
	if _, err := io.ReadFull(f.in, b[5:13]); err != nil {
		return err
	}
	id := binary.BigEndian.Uint32(b[5:9])
	hl := binary.BigEndian.Uint32(b[9:13])
	if hl > maxHandleLen || body-fixed < hl {
		f.pend, f.remain = b[:13], body-8
		return nil
	}
	end := 13 + int(hl) + 12
	if _, err := io.ReadFull(f.in, b[13:end]); err != nil {
		return err
	}
	handle := b[13 : 13+hl]
	off := int64(binary.BigEndian.Uint64(b[13+hl:]))
	f.remain = body - fixed - hl
	dataLen := binary.BigEndian.Uint32(b[end-4:])
	if done, err := f.directWrite(id, handle, off, dataLen); done || err != nil {
		return err
	}
	n := int64(min(dataLen, f.remain))
	newOff, rewrite, ok := f.order.handleOp(id, handle, opWrite, off, n)
	if !ok {
		return errSessionOver
	}
	if rewrite {
		binary.BigEndian.PutUint64(b[13+hl:], uint64(newOff))
	}
	f.pend = b[:end]
	return nil
}

// control handles a request read whole: it answers it, rewrites it, or
// orders it and queues it for pkg/sftp.
func (f *framer) control(pkt []byte) error {
	typ, body := pkt[4], pkt[5:]
	if typ == fxpInit {
		return f.inject(versionPacket())
	}
	f.pend = pkt
	id, rest, ok := takeUint32(body)
	if !ok {
		return nil
	}
	ordered := true
	switch typ {
	case fxpOpen:
		path, rest, ok := takeString(rest)
		pflags, _, ok2 := takeUint32(rest)
		if !ok || !ok2 {
			f.order.stopDirect() // an OPEN not followed: see direct.go
			break
		}
		f.order.open(id, path, pflags)
	case fxpClose:
		f.trackClose(id)
		if handle, _, ok := takeString(rest); ok {
			_, _, ordered = f.order.handleOp(id, handle, opOther, 0, 0)
			f.order.closed(handle)
		}
	case fxpRead:
		handle, rest, ok := takeString(rest)
		if ok && len(rest) >= 12 {
			off := int64(binary.BigEndian.Uint64(rest))
			n := int64(binary.BigEndian.Uint32(rest[8:]))
			_, _, ordered = f.order.handleOp(id, handle, opRead, off, n)
		}
	case fxpFstat, fxpFsetstat:
		if handle, _, ok := takeString(rest); ok {
			_, _, ordered = f.order.handleOp(id, handle, opOther, 0, 0)
		}
	case fxpSetstat, fxpRemove, fxpRename:
		ordered = f.order.pathOp(id)
	case fxpExtended:
		name, rest, ok := takeString(rest)
		if !ok {
			return nil
		}
		switch string(name) {
		case extLimits:
			f.pend = nil
			return f.inject(limitsPacket(id))
		case extPosixRename:
			ordered = f.order.pathOp(id)
		case extFsync:
			handle, _, ok := takeString(rest)
			if !ok {
				break
			}
			// SSH_FXP_FSETSTAT id handle flags(0)
			b := make([]byte, 0, 4+1+4+4+len(handle)+4)
			b = binary.BigEndian.AppendUint32(b, uint32(1+4+4+len(handle)+4))
			b = append(b, fxpFsetstat)
			b = binary.BigEndian.AppendUint32(b, id)
			b = appendString(b, handle)
			b = binary.BigEndian.AppendUint32(b, 0)
			f.pend = b
			_, _, ordered = f.order.handleOp(id, handle, opOther, 0, 0)
		}
	}
	if !ordered {
		return errSessionOver
	}
	return nil
}

func versionPacket() []byte {
	b := []byte{0, 0, 0, 0, fxpVersion}
	b = binary.BigEndian.AppendUint32(b, sftpVersion)
	for _, e := range extensions {
		b = appendString(b, []byte(e[0]))
		b = appendString(b, []byte(e[1]))
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func limitsPacket(id uint32) []byte {
	b := []byte{0, 0, 0, 0, fxpExtendedReply}
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint64(b, 256<<10) // max packet length
	b = binary.BigEndian.AppendUint64(b, maxData) // max read length
	b = binary.BigEndian.AppendUint64(b, maxData) // max write length
	b = binary.BigEndian.AppendUint64(b, maxOpenHandles)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// inject sends a reply of the framer's own between two of pkg/sftp's
// packets: now if no packet is half written, else once it is complete.
func (f *framer) inject(pkt []byte) error {
	if len(f.out) > 0 {
		// After the replies to the direct writes before it.
		f.out = append(f.out, pkt...)
		return f.flush()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.outLeft > 0 || f.outHdrN > 0 {
		f.injected = append(f.injected, pkt)
		return nil
	}
	_, err := f.rw.Write(pkt)
	return err
}

// Write passes pkg/sftp's output through, tracking packet boundaries
// (pkg/sftp writes a packet's header and payload in separate calls).
//
// The output is tracked before it is written: the client may send
// requests on a handle the moment its HANDLE reply arrives, and order
// must know the handle by then (else they would slip past the ordering).
// A reply tracked before it is written is still an answered request:
// pkg/sftp writes it only once the request took effect. The CLOSE replies
// Shutdown waits for are released only after they are written.
func (f *framer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.track(p)
	n, err := f.rw.Write(p)
	for ; f.closesOut > 0; f.closesOut-- {
		f.release()
	}
	if err != nil {
		f.order.stop() // no reply will come: nothing may wait for one
	}
	if err == nil && f.outLeft == 0 && f.outHdrN == 0 {
		for len(f.injected) > 0 {
			if _, err = f.rw.Write(f.injected[0]); err != nil {
				break
			}
			f.injected = f.injected[1:]
		}
	}
	return n, err
}

// track follows packet boundaries in the output. A packet's first 9 bytes
// (length, type, id) are collected in outHdr; outLeft counts the rest. Of
// a HANDLE reply to an OPEN, the body (the handle) is collected too.
// Called with mu held.
func (f *framer) track(b []byte) {
	for len(b) > 0 {
		if f.outLeft == 0 {
			k := copy(f.outHdr[f.outHdrN:], b)
			f.outHdrN += k
			b = b[k:]
			if f.outHdrN == len(f.outHdr) {
				f.outLeft = binary.BigEndian.Uint32(f.outHdr[:4]) + 4 - uint32(len(f.outHdr))
				f.outBody = f.outBody[:0]
				f.wantBody = f.outHdr[4] == fxpHandle && f.outLeft <= 4+maxHandleLen &&
					f.order.wantsHandle(binary.BigEndian.Uint32(f.outHdr[5:9]))
				if f.outLeft == 0 {
					f.packetDone()
				}
			}
			continue
		}
		k := min(uint32(len(b)), f.outLeft)
		if f.wantBody {
			f.outBody = append(f.outBody, b[:k]...)
		}
		f.outLeft -= k
		b = b[k:]
		if f.outLeft == 0 {
			f.packetDone()
		}
	}
}

// packetDone is called when a whole packet has been written: the request
// it answers took effect.
func (f *framer) packetDone() {
	f.outHdrN = 0
	id := binary.BigEndian.Uint32(f.outHdr[5:9])
	var handle []byte
	if f.wantBody {
		handle, _, _ = takeString(f.outBody)
		if handle == nil {
			handle = []byte{}
		}
	}
	req, isOpen := f.order.replied(id, handle)
	if isOpen && f.outHdr[4] == fxpHandle && req.pflags&fxfWriting != 0 && f.uploads != nil {
		// An upload was opened: see direct.go.
		if w := f.uploads.claimUpload(req.path, req.pflags); w != nil && handle != nil {
			f.order.attach(handle, w)
		} else {
			f.order.stopDirect()
		}
	}
	if f.inflight.Load() > 0 {
		f.inflight.Add(-1)
	}
	if f.outHdr[4] != fxpStatus {
		return
	}
	if _, ok := f.closes[id]; ok {
		delete(f.closes, id)
		if f.release != nil {
			f.closesOut++ // released by Write once the reply is written
		}
	}
}

func (f *framer) trackClose(id uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closes == nil {
		f.closes = map[uint32]struct{}{}
	}
	if _, dup := f.closes[id]; dup || f.hold == nil {
		return
	}
	f.closes[id] = struct{}{}
	f.hold()
}

// releaseAll releases the close requests left without a reply when the
// session ends.
func (f *framer) releaseAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.closes {
		delete(f.closes, id)
		f.release()
	}
}

func takeUint32(b []byte) (uint32, []byte, bool) {
	if len(b) < 4 {
		return 0, b, false
	}
	return binary.BigEndian.Uint32(b), b[4:], true
}

func takeString(b []byte) ([]byte, []byte, bool) {
	n, rest, ok := takeUint32(b)
	if !ok || uint64(n) > uint64(len(rest)) {
		return nil, b, false
	}
	return rest[:n], rest[n:], true
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
