package sftpd

import (
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"sync"
	"testing"
)

// memRW is the channel side of a framer in a test: reads come from in,
// writes go to out.
type memRW struct {
	in  io.Reader
	out bytes.Buffer
}

func (m *memRW) Read(p []byte) (int, error)  { return m.in.Read(p) }
func (m *memRW) Write(p []byte) (int, error) { return m.out.Write(p) }
func (m *memRW) Close() error                { return nil }

func packet(typ byte, id uint32, body ...[]byte) []byte {
	b := []byte{0, 0, 0, 0, typ}
	b = binary.BigEndian.AppendUint32(b, id)
	for _, x := range body {
		b = append(b, x...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// serveFramer reads packets out of a framer over input as pkg/sftp would,
// answers each at once (a HANDLE for an OPEN, else a STATUS), and returns
// the packets pkg/sftp would have seen.
func serveFramer(t *testing.T, input []byte) [][]byte {
	return serveFramerOn(t, newFramer(&memRW{in: bytes.NewReader(input)}, nil, nil))
}

// serveFramerOn is serveFramer with a framer made by the test.
func serveFramerOn(t *testing.T, f *framer) [][]byte {
	var got [][]byte
	handles := 0
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			return got
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 1<<20 {
			return got // pkg/sftp refuses such a length and ends the session
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(f, body); err != nil {
			return got
		}
		got = append(got, append(hdr[:], body...))
		if n < 5 {
			continue
		}
		id := binary.BigEndian.Uint32(body[1:5])
		if body[0] == fxpOpen {
			handles++
			f.Write(packet(fxpHandle, id, appendString(nil, []byte(strconv.Itoa(handles)))))
			continue
		}
		f.Write(packet(fxpStatus, id, u32(0), appendString(nil, nil), appendString(nil, nil)))
	}
}

// TestFramerAppendOffsets: writes on a handle opened with SSH_FXF_APPEND
// reach pkg/sftp with offsets counted from 0 in arrival order, whatever
// the client wrote; other handles keep theirs.
func TestFramerAppendOffsets(t *testing.T) {
	var in []byte
	in = append(in, packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(fxfAppend|0x02), u32(0))...)
	in = append(in, packet(fxpOpen, 2, appendString(nil, []byte("b.csv")), u32(0x02), u32(0))...)
	for i, w := range []struct {
		handle string
		off    uint64
		n      int
	}{{"1", 0, 10}, {"1", 0, 5}, {"2", 100, 7}, {"1", 999, 3}} {
		in = append(in, packet(fxpWrite, uint32(10+i), appendString(nil, []byte(w.handle)), u64(w.off), appendString(nil, make([]byte, w.n)))...)
	}
	got := serveFramer(t, in)
	var offs []uint64
	for _, p := range got {
		if p[4] == fxpWrite {
			_, rest, _ := takeString(p[9:])
			offs = append(offs, binary.BigEndian.Uint64(rest))
		}
	}
	want := []uint64{0, 10, 100, 15}
	if len(offs) != len(want) {
		t.Fatalf("write offsets %v; want %v", offs, want)
	}
	for i := range want {
		if offs[i] != want[i] {
			t.Fatalf("write offsets %v; want %v", offs, want)
		}
	}
}

// FuzzFramer feeds arbitrary client bytes through the framer, with direct
// writes on: it must not panic or hang, and what it hands on and what it
// replies are whole packets.
func FuzzFramer(f *testing.F) {
	open := packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(fxfAppend|0x02), u32(0))
	write := packet(fxpWrite, 2, appendString(nil, []byte("1")), u64(5), appendString(nil, []byte("data")))
	f.Add(append(append([]byte{}, open...), write...))
	f.Add(packet(fxpExtended, 3, appendString(nil, []byte(extFsync)), appendString(nil, []byte("1"))))
	f.Add(packet(fxpExtended, 4, appendString(nil, []byte(extLimits))))
	f.Add(packet(fxpRead, 5, appendString(nil, []byte("1")), u64(0), u32(10)))
	f.Add(packet(fxpClose, 6, appendString(nil, []byte("1"))))
	f.Add(packet(fxpSetstat, 7, appendString(nil, []byte("x")), u32(0)))
	f.Add([]byte{0, 0, 0, 9, fxpWrite, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add(append(append([]byte{}, open...), packet(fxpWrite, 2, appendString(nil, []byte("1")), u64(5), u32(1<<30))...))
	f.Fuzz(func(t *testing.T, in []byte) {
		rw := &memRW{in: bytes.NewReader(in)}
		fr := newFramer(rw, nil, nil)
		fr.uploads = &memUploads{}
		for _, p := range serveFramerOn(t, fr) {
			if n := binary.BigEndian.Uint32(p); int(n) != len(p)-4 {
				t.Fatalf("packet of %d bytes says length %d", len(p), n)
			}
		}
		replies(t, rw.out.Bytes())
	})
}

// gatedRW is the channel side of a framer whose writes wait at a gate:
// entered is closed when a write reaches the client's side (its bytes are
// as good as sent), and the write returns once open is closed.
type gatedRW struct {
	in      io.Reader
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
}

func (g *gatedRW) Read(p []byte) (int, error) { return g.in.Read(p) }
func (g *gatedRW) Close() error               { return nil }
func (g *gatedRW) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	return len(p), nil
}

// readPacket reads one whole packet out of the framer, as pkg/sftp does.
func readPacket(t *testing.T, f *framer) []byte {
	t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
	copy(p, hdr[:])
	if _, err := io.ReadFull(f, p[4:]); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFramerHandleKnownBeforeReplySent: a client may send requests on a
// handle as soon as the HANDLE reply reaches it, while the server's
// goroutine that wrote the reply has not gone on yet. The framer must
// already know the handle then; before, such requests slipped past the
// ordering (a write on an append handle kept the client's offset, an
// FSETSTAT ran before the writes it followed: lftp mirror -R lost times
// now and then against the real daemon).
func TestFramerHandleKnownBeforeReplySent(t *testing.T) {
	in, client := io.Pipe()
	rw := &gatedRW{in: in, entered: make(chan struct{}), open: make(chan struct{})}
	f := newFramer(rw, nil, nil)
	defer close(rw.open)
	go client.Write(packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(fxfAppend|0x02), u32(0)))
	if p := readPacket(t, f); p[4] != fxpOpen {
		t.Fatalf("first packet type %d; want OPEN", p[4])
	}
	go f.Write(packet(fxpHandle, 1, appendString(nil, []byte("1"))))
	<-rw.entered // the client has its handle
	go func() {
		client.Write(packet(fxpWrite, 2, appendString(nil, []byte("1")), u64(0), appendString(nil, make([]byte, 10))))
		client.Write(packet(fxpWrite, 3, appendString(nil, []byte("1")), u64(0), appendString(nil, make([]byte, 5))))
	}()
	var offs []uint64
	for range 2 {
		p := readPacket(t, f)
		_, rest, _ := takeString(p[9:])
		offs = append(offs, binary.BigEndian.Uint64(rest))
	}
	if offs[0] != 0 || offs[1] != 10 {
		t.Fatalf("append write offsets %v; want [0 10]: the handle was unknown when its first requests came", offs)
	}
}

// countingReader counts the reads made of it.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestFramerReadsInLargeChunks: x/crypto's channel sends the client a
// window adjustment after almost every Read once data is queued, so the
// framer must not read the channel a few bytes at a time (a request's
// header, handle and offset): 64 writes of 32 KiB take about one read per
// 64 KiB, not four per write.
func TestFramerReadsInLargeChunks(t *testing.T) {
	var in []byte
	in = append(in, packet(fxpOpen, 1, appendString(nil, []byte("a.csv")), u32(0x02|0x08), u32(0))...)
	const writes = 64
	for i := range writes {
		in = append(in, packet(fxpWrite, uint32(2+i), appendString(nil, []byte("1")), u64(uint64(i)<<15), appendString(nil, make([]byte, 32<<10)))...)
	}
	cr := &countingReader{r: bytes.NewReader(in)}
	rw := &memRW{in: cr}
	f := newFramer(rw, nil, nil)
	n := 0
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			break
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(f, body); err != nil {
			t.Fatal(err)
		}
		if body[0] == fxpOpen {
			f.Write(packet(fxpHandle, 1, appendString(nil, []byte("1"))))
		}
		n++
	}
	if n != writes+1 {
		t.Fatalf("framer passed %d packets; want %d", n, writes+1)
	}
	if max := len(in)/readBufferSize + 4; cr.reads > max {
		t.Errorf("framer read the channel %d times for %d bytes; want at most %d", cr.reads, len(in), max)
	}
}
