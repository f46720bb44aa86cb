package sftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// memUploads is an uploadClaimer for framer tests: every writing OPEN the
// framer sees answered makes an upload in memory.
type memUploads struct {
	mu    sync.Mutex
	files []*memFile
	err   error // what every WriteAt returns
}

func (m *memUploads) claimUpload(path string, pflags uint32) io.WriterAt {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &memFile{err: m.err}
	m.files = append(m.files, f)
	return f
}

// memFile records the writes made to it.
type memFile struct {
	mu   sync.Mutex
	data []byte
	offs []int64
	err  error
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	if off < 0 || off > 1<<20 {
		return 0, failure("upload exceeds the size limit") // as an upload's limit
	}
	if end := int(off) + len(p); end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
	copy(f.data[off:], p)
	f.offs = append(f.offs, off)
	return len(p), nil
}

// replies splits a framer's output into packets and returns each one's
// type and request id.
func replies(t *testing.T, out []byte) (types []byte, ids []uint32) {
	t.Helper()
	for len(out) > 0 {
		if len(out) < 9 {
			t.Fatalf("output ends in a partial packet: %x", out)
		}
		n := int(binary.BigEndian.Uint32(out))
		if 4+n > len(out) {
			t.Fatalf("output ends in a partial packet of %d bytes, %d left", n, len(out)-4)
		}
		types = append(types, out[4])
		ids = append(ids, binary.BigEndian.Uint32(out[5:]))
		out = out[4+n:]
	}
	return types, ids
}

func writePacket(id uint32, handle string, off uint64, data []byte) []byte {
	return packet(fxpWrite, id, appendString(nil, []byte(handle)), u64(off), appendString(nil, data))
}

// TestFramerDirectWrites: once an upload's HANDLE reply has gone out, the
// framer applies the writes on it itself while pkg/sftp has nothing in
// flight, in the order sent; pkg/sftp sees only the other requests, and
// every reply goes out in request order.
func TestFramerDirectWrites(t *testing.T) {
	var in []byte
	in = append(in, packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(0x02|0x08), u32(0))...)
	in = append(in, writePacket(2, "1", 0, []byte("0123456789"))...)
	in = append(in, writePacket(3, "1", 10, []byte("abcde"))...)
	in = append(in, packet(fxpFstat, 4, appendString(nil, []byte("1")))...)
	in = append(in, writePacket(5, "1", 5, []byte("XY"))...)
	in = append(in, packet(fxpClose, 6, appendString(nil, []byte("1")))...)
	rw := &memRW{in: bytes.NewReader(in)}
	f := newFramer(rw, nil, nil)
	ups := &memUploads{}
	f.uploads = ups

	var seen []byte
	for _, p := range serveFramerOn(t, f) {
		seen = append(seen, p[4])
	}
	if want := []byte{fxpOpen, fxpFstat, fxpClose}; !bytes.Equal(seen, want) {
		t.Errorf("pkg/sftp saw packet types %v; want %v (the writes applied by the framer)", seen, want)
	}
	if len(ups.files) != 1 {
		t.Fatalf("%d uploads claimed; want 1", len(ups.files))
	}
	if got, want := string(ups.files[0].data), "01234XY789abcde"; got != want {
		t.Errorf("upload holds %q; want %q", got, want)
	}
	types, ids := replies(t, rw.out.Bytes())
	if want := []uint32{1, 2, 3, 4, 5, 6}; !slices.Equal(ids, want) {
		t.Errorf("replies to ids %v; want %v, in request order", ids, want)
	}
	if want := []byte{fxpHandle, fxpStatus, fxpStatus, fxpStatus, fxpStatus, fxpStatus}; !bytes.Equal(types, want) {
		t.Errorf("reply types %v; want %v", types, want)
	}
}

// TestFramerDirectAppendOffsets: direct writes on an append handle get
// the same offsets as those through pkg/sftp: from 0, in arrival order,
// whatever the client wrote.
func TestFramerDirectAppendOffsets(t *testing.T) {
	var in []byte
	in = append(in, packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(fxfAppend|0x02), u32(0))...)
	in = append(in, writePacket(2, "1", 0, make([]byte, 10))...)
	in = append(in, writePacket(3, "1", 0, make([]byte, 5))...)
	in = append(in, writePacket(4, "1", 999, make([]byte, 3))...)
	f := newFramer(&memRW{in: bytes.NewReader(in)}, nil, nil)
	ups := &memUploads{}
	f.uploads = ups
	serveFramerOn(t, f)
	if len(ups.files) != 1 {
		t.Fatalf("%d uploads claimed; want 1", len(ups.files))
	}
	if got, want := ups.files[0].offs, []int64{0, 10, 15}; !slices.Equal(got, want) {
		t.Errorf("append write offsets %v; want %v", got, want)
	}
}

// TestFramerDirectWriteStatus: the error of a direct write reaches the
// client as pkg/sftp would send it: the code the error wraps and its
// message.
func TestFramerDirectWriteStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code uint32
	}{
		{nil, 0},
		{failure("upload exceeds the size limit of 100 bytes"), 4},
		{denied("permission denied"), 3},
		{errNoSuchFile, 2},
		{errUnsupported, 8},
		{errors.New("not a status"), 4},
	} {
		in := packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(0x02|0x08), u32(0))
		in = append(in, writePacket(7, "1", 0, []byte("data"))...)
		rw := &memRW{in: bytes.NewReader(in)}
		f := newFramer(rw, nil, nil)
		f.uploads = &memUploads{err: tc.err}
		if seen := serveFramerOn(t, f); len(seen) != 1 {
			t.Fatalf("pkg/sftp saw %d packets; want the OPEN only", len(seen))
		}
		out := rw.out.Bytes()
		_, ids := replies(t, out)
		if len(ids) != 2 || ids[1] != 7 {
			t.Fatalf("replies to ids %v; want [1 7]", ids)
		}
		st := out[4+binary.BigEndian.Uint32(out):]
		body := st[9:]
		code := binary.BigEndian.Uint32(body)
		msg, rest, ok := takeString(body[4:])
		lang, rest, ok2 := takeString(rest)
		if !ok || !ok2 || len(rest) != 0 || len(lang) != 0 {
			t.Fatalf("STATUS body %x is not code, message and an empty language tag", body)
		}
		wantMsg := ""
		if tc.err != nil {
			wantMsg = tc.err.Error()
		}
		if code != tc.code || string(msg) != wantMsg {
			t.Errorf("WriteAt error %v: STATUS %d %q; want %d %q", tc.err, code, msg, tc.code, wantMsg)
		}
	}
}

// TestFramerDirectWriteLimits: the framer applies no write larger than
// limits@openssh.com announces (pkg/sftp refuses such packets), no write
// whose data length disagrees with its packet, and none after an OPEN it
// could not follow.
func TestFramerDirectWriteLimits(t *testing.T) {
	open := packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(0x02|0x08), u32(0))
	short := writePacket(3, "1", 0, []byte("abcdef"))
	binary.BigEndian.PutUint32(short[len(short)-10:], 5) // data length 5 of 6 bytes
	for name, tc := range map[string][]byte{
		"too large":   writePacket(2, "1", 0, make([]byte, maxData+1)),
		"bad length":  short,
		"opaque open": append(packet(fxpOpen, 2, []byte{0, 0}), writePacket(3, "1", 0, []byte("x"))...),
	} {
		f := newFramer(&memRW{in: bytes.NewReader(append(slices.Clone(open), tc...))}, nil, nil)
		f.uploads = &memUploads{}
		seen := serveFramerOn(t, f)
		if p := seen[len(seen)-1]; p[4] != fxpWrite {
			t.Errorf("%s: the write did not reach pkg/sftp (last packet type %d)", name, p[4])
		}
	}
}

// TestDirectWritesBesideReads: on a handle open for reading and writing,
// writes and reads sent without waiting, so that some writes are applied
// by the framer and others wait behind a read in pkg/sftp, take effect in
// the order sent, and the replies come in request order.
func TestDirectWritesBesideReads(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	r := e.rawSFTP(t, "acme", k)
	h := r.open("users.csv", pfRead|pfWrite|pfCreat|pfTrunc)
	const n = 4 << 10
	var ids []uint32
	var want [][]byte // what each read returns, nil for a write
	content := []byte{}
	for i := range 40 {
		data := pattern(n, byte(i))
		off := int64(i%3) * n / 2
		ids = append(ids, r.write(h, off, data))
		want = append(want, nil)
		if end := int(off) + n; end > len(content) {
			content = append(content, make([]byte, end-len(content))...)
		}
		copy(content[off:], data)
		if i%4 == 1 {
			ids = append(ids, r.read(h, 0, uint32(len(content))))
			want = append(want, slices.Clone(content))
		}
	}
	for i, id := range ids {
		typ, got, body := r.recv()
		if got != id {
			t.Fatalf("reply %d answers id %d; want %d: replies out of request order", i, got, id)
		}
		if want[i] == nil {
			if typ != rawStatus || binary.BigEndian.Uint32(body) != 0 {
				t.Fatalf("write %d: reply type %d %x; want STATUS OK", id, typ, body)
			}
			continue
		}
		data, _, _ := takeString(body)
		if typ != rawData || !bytes.Equal(data, want[i]) {
			t.Fatalf("read %d: type %d, %d bytes; want DATA with every write before it (%d bytes)", id, typ, len(data), len(want[i]))
		}
	}
	r.ok(r.close(h), "close")
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != string(content) {
		t.Errorf("users.csv holds %d bytes, not what was written in order (%d bytes)", len(got), len(content))
	}
}

// TestDirectRepliesInRequestOrder: requests pkg/sftp answers (stat,
// fstat, a read) sent among writes the framer applies get their replies
// in request order, on two handles at once.
func TestDirectRepliesInRequestOrder(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	r := e.rawSFTP(t, "acme", k)
	a := r.open("a.csv", pfWrite|pfCreat|pfTrunc)
	b := r.open("b.csv", pfRead|pfWrite|pfCreat|pfTrunc)
	chunk := pattern(32<<10, 3)
	var ids []uint32
	for i := range 64 {
		ids = append(ids, r.write(a, int64(i*len(chunk)), chunk))
		switch i % 16 {
		case 3:
			ids = append(ids, r.request(8, str(b))) // FSTAT
		case 7:
			ids = append(ids, r.request(17, str("a.csv"))) // STAT
		case 11:
			ids = append(ids, r.read(b, 0, 10))
		}
		ids = append(ids, r.write(b, int64(i), []byte{'x'}))
	}
	ids = append(ids, r.close(a), r.close(b))
	for i, id := range ids {
		typ, got, body := r.recv()
		if got != id {
			t.Fatalf("reply %d answers id %d; want %d: replies out of request order", i, got, id)
		}
		if typ == rawStatus && binary.BigEndian.Uint32(body) != 0 && binary.BigEndian.Uint32(body) != 1 { // 1: EOF of the first read
			t.Fatalf("request %d failed: %x", id, body)
		}
	}
	if st, err := os.Stat(e.orgFile("acme", "a.csv")); err != nil || st.Size() != 64*int64(len(chunk)) {
		t.Errorf("a.csv: %v, %v; want %d bytes", st, err, 64*len(chunk))
	}
	if got := readFile(t, e.orgFile("acme", "b.csv")); got != string(bytes.Repeat([]byte{'x'}, 64)) {
		t.Errorf("b.csv = %q; want 64 x", got)
	}
}

// TestDirectWriteErrorStatus: SPEC §3, an upload past the size limit is
// refused with a failure that says so, whether the framer applied the
// write or pkg/sftp did, and the upload is discarded at close with
// nothing signalled.
func TestDirectWriteErrorStatus(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxUploadSize = 100 })
	k := e.addOrg(t, "acme")
	r := e.rawSFTP(t, "acme", k)
	h := r.open("users.csv", pfRead|pfWrite|pfCreat|pfTrunc)
	r.ok(r.write(h, 0, pattern(60, 1)), "first write")
	direct := r.write(h, 60, pattern(60, 2)) // nothing in flight: the framer applies it
	code, msg := r.status(direct)
	want := "upload exceeds the size limit of 100 bytes"
	if code != 4 || msg != want {
		t.Errorf("write past the limit: STATUS %d %q; want 4 (failure) %q", code, msg, want)
	}
	rd := r.read(h, 0, 10) // in flight in pkg/sftp: the write behind it goes there too
	viaPkg := r.write(h, 60, pattern(10, 3))
	if typ, id, _ := r.recv(); id != rd || typ != rawData {
		t.Fatalf("reply type %d id %d; want DATA for the read %d", typ, id, rd)
	}
	if code2, msg2 := r.status(viaPkg); code2 != code || msg2 != msg {
		t.Errorf("the same refusal through pkg/sftp: STATUS %d %q; direct: %d %q", code2, msg2, code, msg)
	}
	if code, msg := r.status(r.close(h)); code != 4 || msg != want {
		t.Errorf("close of the refused upload: STATUS %d %q; want 4 %q", code, msg, want)
	}
	if names := dirNames(t, e.orgFile("acme", "")); !slices.Equal(names, []string{"reports"}) {
		t.Errorf("folder holds %v; want reports only: the refused upload discarded", names)
	}
	if n := e.notes.get(); len(n) != 0 {
		t.Errorf("Notify called %v for a refused upload", n)
	}
}

// TestDirectWriteGuessedHandle: a client that closes a handle it guessed
// before its OPEN was answered, and writes on it, cannot make the framer
// write into another upload of the session.
func TestDirectWriteGuessedHandle(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	r := e.rawSFTP(t, "acme", k)
	open := func(name string) uint32 {
		body := append(str(name), binary.BigEndian.AppendUint32(nil, pfWrite|pfCreat|pfTrunc)...)
		return r.request(rawOpen, binary.BigEndian.AppendUint32(body, 0))
	}
	o1 := open("a.csv")
	c1 := r.close("1") // pkg/sftp numbers handles from 1
	o2 := open("b.csv")
	for _, id := range []uint32{o1, c1, o2} {
		if typ, got, _ := r.recv(); got != id {
			t.Fatalf("reply type %d to id %d; want id %d", typ, got, id)
		}
	}
	for i := range 8 {
		r.status(r.write("1", int64(i), []byte("!"))) // refused or not: never into b.csv
		r.ok(r.write("2", int64(i), []byte("b")), "write b.csv")
	}
	r.ok(r.close("2"), "close b.csv")
	if got := readFile(t, e.orgFile("acme", "b.csv")); got != "bbbbbbbb" {
		t.Errorf("b.csv = %q; want bbbbbbbb", got)
	}
}
