package sftpd

import (
	"encoding/binary"
	"io"
	"sync"
)

// SFTP packet types and extension names the framer handles itself.
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpClose         = 4
	fxpFsetstat      = 10
	fxpStatus        = 101
	fxpExtended      = 200
	fxpExtendedReply = 201

	extLimits      = "limits@openssh.com"
	extFsync       = "fsync@openssh.com"
	sftpVersion    = 3
	maxControlPkt  = 64 << 10 // INIT and EXTENDED packets are read whole up to this size
	maxOpenHandles = 256
)

// extensions are announced in SSH_FXP_VERSION. hardlink@openssh.com is
// deliberately absent (links are refused); pkg/sftp implements the first
// two, the framer the last two.
var extensions = [][2]string{
	{"posix-rename@openssh.com", "1"},
	{"statvfs@openssh.com", "2"},
	{extFsync, "1"},
	{extLimits, "1"},
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
//     this file" (pkg/sftp routes it to the path with ordered replies).
//
// Every other packet passes through: its 5-byte header is copied, its body
// is read straight into pkg/sftp's buffer.
type framer struct {
	rw io.ReadWriteCloser

	// hold and release (optional) count SSH_FXP_CLOSE requests from the
	// moment they are read until their reply is written, for Shutdown.
	hold, release func()

	// read side, used only by pkg/sftp's single reader goroutine
	hdr    [5]byte
	pend   []byte // bytes to hand out before reading rw again
	remain uint32 // body bytes of the current packet still to pass through

	// write side
	mu       sync.Mutex
	outHdr   [9]byte // length, type and id of the packet being written
	outHdrN  int
	outLeft  uint32              // bytes of the current outgoing packet still to come
	injected [][]byte            // replies waiting for a packet boundary
	closes   map[uint32]struct{} // ids of CLOSE requests awaiting a reply
}

func newFramer(rw io.ReadWriteCloser) *framer { return &framer{rw: rw} }

func (f *framer) Close() error { return f.rw.Close() }

func (f *framer) Read(p []byte) (int, error) {
	for {
		if len(f.pend) > 0 {
			n := copy(p, f.pend)
			f.pend = f.pend[n:]
			return n, nil
		}
		if f.remain > 0 {
			if uint32(len(p)) > f.remain {
				p = p[:f.remain]
			}
			n, err := f.rw.Read(p)
			f.remain -= uint32(n)
			return n, err
		}
		if _, err := io.ReadFull(f.rw, f.hdr[:]); err != nil {
			return 0, err
		}
		length := binary.BigEndian.Uint32(f.hdr[:4])
		typ := f.hdr[4]
		if length == 0 || (typ != fxpInit && typ != fxpExtended && typ != fxpClose) || length > maxControlPkt {
			// pkg/sftp rejects bad lengths itself.
			f.pend = f.hdr[:]
			if length > 0 {
				f.remain = length - 1
			}
			continue
		}
		pkt := make([]byte, 4+length)
		copy(pkt, f.hdr[:])
		if _, err := io.ReadFull(f.rw, pkt[5:]); err != nil {
			return 0, err
		}
		if err := f.control(pkt); err != nil {
			return 0, err
		}
	}
}

// control handles a whole INIT or EXTENDED packet: it answers it, rewrites
// it, or queues it unchanged for pkg/sftp.
func (f *framer) control(pkt []byte) error {
	body := pkt[5:]
	if pkt[4] == fxpInit {
		return f.inject(versionPacket())
	}
	id, rest, ok := takeUint32(body)
	if !ok {
		f.pend = pkt
		return nil
	}
	if pkt[4] == fxpClose {
		f.trackClose(id)
		f.pend = pkt
		return nil
	}
	name, rest, ok := takeString(rest)
	if !ok {
		f.pend = pkt
		return nil
	}
	switch string(name) {
	case extLimits:
		return f.inject(limitsPacket(id))
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
		return nil
	}
	f.pend = pkt
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
func (f *framer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.rw.Write(p)
	f.track(p[:n])
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
// (length, type, id) are collected in outHdr; outLeft counts the rest.
// Called with mu held.
func (f *framer) track(b []byte) {
	for len(b) > 0 {
		if f.outLeft == 0 {
			k := copy(f.outHdr[f.outHdrN:], b)
			f.outHdrN += k
			b = b[k:]
			if f.outHdrN == len(f.outHdr) {
				f.outLeft = binary.BigEndian.Uint32(f.outHdr[:4]) + 4 - uint32(len(f.outHdr))
				if f.outLeft == 0 {
					f.packetDone()
				}
			}
			continue
		}
		k := min(uint32(len(b)), f.outLeft)
		f.outLeft -= k
		b = b[k:]
		if f.outLeft == 0 {
			f.packetDone()
		}
	}
}

// packetDone is called when a whole packet has been written.
func (f *framer) packetDone() {
	f.outHdrN = 0
	if f.outHdr[4] != fxpStatus {
		return
	}
	id := binary.BigEndian.Uint32(f.outHdr[5:9])
	if _, ok := f.closes[id]; ok {
		delete(f.closes, id)
		if f.release != nil {
			f.release()
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
