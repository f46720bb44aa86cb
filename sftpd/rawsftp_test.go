package sftpd

import (
	"bufio"
	"encoding/binary"
	"io"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// rawSFTP speaks SFTP v3 packet by packet, so a test can pipeline
// requests the way lftp does (writes, then a setstat and a close, without
// waiting for any reply).
type rawSFTP struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Reader
	id  uint32
}

// SFTP v3 packet types and attribute flags used by rawSFTP.
const (
	rawOpen     = 3
	rawClose    = 4
	rawRead     = 5
	rawWrite    = 6
	rawFsetstat = 10
	rawStatus   = 101
	rawHandle   = 102
	rawData     = 103

	attrPerm  = 0x4
	attrTimes = 0x8

	pfRead   = 0x01
	pfWrite  = 0x02
	pfAppend = 0x04
	pfCreat  = 0x08
	pfTrunc  = 0x10
)

func (e *env) rawSFTP(t *testing.T, org string, key sftptest.Key) *rawSFTP {
	t.Helper()
	c, err := e.dial(org, ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("dial %s: %v", org, err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	r := &rawSFTP{t: t, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	r.send(1, binary.BigEndian.AppendUint32(nil, 3)) // INIT, no id
	if typ, _, _ := r.recv(); typ != 2 {
		t.Fatalf("reply to INIT has type %d; want VERSION", typ)
	}
	return r
}

func (r *rawSFTP) send(typ byte, body []byte) {
	r.t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	b = append(b, typ)
	if _, err := r.in.Write(append(b, body...)); err != nil {
		r.t.Fatalf("send packet %d: %v", typ, err)
	}
}

// request sends a packet with a fresh id followed by body and returns the id.
func (r *rawSFTP) request(typ byte, body []byte) uint32 {
	r.t.Helper()
	r.id++
	r.send(typ, append(binary.BigEndian.AppendUint32(nil, r.id), body...))
	return r.id
}

// recv reads the next reply: its type, request id and the rest.
func (r *rawSFTP) recv() (byte, uint32, []byte) {
	r.t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(r.out, hdr[:]); err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
	if _, err := io.ReadFull(r.out, body); err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	if hdr[4] == 2 {
		return hdr[4], 0, body
	}
	return hdr[4], binary.BigEndian.Uint32(body), body[4:]
}

// status reads the reply to id and returns its SSH_FX code and message; a
// reply that is not a STATUS fails the test.
func (r *rawSFTP) status(id uint32) (uint32, string) {
	r.t.Helper()
	typ, got, body := r.recv()
	if got != id || typ != rawStatus {
		r.t.Fatalf("reply (type %d, id %d); want STATUS for id %d", typ, got, id)
	}
	code := binary.BigEndian.Uint32(body)
	msg, _, _ := takeString(body[4:])
	return code, string(msg)
}

func (r *rawSFTP) ok(id uint32, what string) {
	r.t.Helper()
	if code, msg := r.status(id); code != 0 {
		r.t.Fatalf("%s: status %d %q", what, code, msg)
	}
}

func str(s string) []byte { return appendString(nil, []byte(s)) }

// open opens path with pflags and returns the handle.
func (r *rawSFTP) open(path string, pflags uint32) string {
	r.t.Helper()
	body := append(str(path), binary.BigEndian.AppendUint32(nil, pflags)...)
	id := r.request(rawOpen, binary.BigEndian.AppendUint32(body, 0))
	typ, got, b := r.recv()
	if typ != rawHandle || got != id {
		r.t.Fatalf("open %s: reply type %d id %d: %q", path, typ, got, b)
	}
	h, _, _ := takeString(b)
	return string(h)
}

func (r *rawSFTP) write(handle string, off int64, data []byte) uint32 {
	body := binary.BigEndian.AppendUint64(str(handle), uint64(off))
	return r.request(rawWrite, appendString(body, data))
}

func (r *rawSFTP) read(handle string, off int64, n uint32) uint32 {
	body := binary.BigEndian.AppendUint64(str(handle), uint64(off))
	return r.request(rawRead, binary.BigEndian.AppendUint32(body, n))
}

// fsetstat sets mode and times (both seconds since the epoch).
func (r *rawSFTP) fsetstat(handle string, mode uint32, atime, mtime uint32) uint32 {
	body := binary.BigEndian.AppendUint32(str(handle), attrPerm|attrTimes)
	body = binary.BigEndian.AppendUint32(body, mode)
	body = binary.BigEndian.AppendUint32(body, atime)
	return r.request(rawFsetstat, binary.BigEndian.AppendUint32(body, mtime))
}

func (r *rawSFTP) close(handle string) uint32 { return r.request(rawClose, str(handle)) }
