package sftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// serverVersion is the SSH identification string.
const serverVersion = "SSH-2.0-rosterd"

// The algorithm policy of SPEC §3: only modern algorithms, offered in the
// order that is fastest in Go on amd64 (measured in cmd/rosterbench):
// AES-GCM (AES-NI + CLMUL assembly, about 4 GB/s) before AES-CTR with an
// HMAC-SHA2 ETM MAC (about 1.5 GB/s together) before chacha20-poly1305,
// whose SSH variant has no assembly in x/crypto.
var (
	kexAlgorithms = []string{
		ssh.KeyExchangeMLKEM768X25519,
		ssh.KeyExchangeCurve25519,
		ssh.KeyExchangeECDHP256,
		ssh.KeyExchangeECDHP384,
		ssh.KeyExchangeECDHP521,
		ssh.KeyExchangeDH14SHA256,
	}
	cipherAlgorithms = []string{
		ssh.CipherAES128GCM,
		ssh.CipherAES256GCM,
		ssh.CipherAES128CTR,
		ssh.CipherAES192CTR,
		ssh.CipherAES256CTR,
		ssh.CipherChaCha20Poly1305,
	}
	// macAlgorithms ends with the non-ETM hmac-sha2-256, a deviation from
	// SPEC §3: libssh2 1.10 (Debian 12's curl) knows no ETM MAC and no
	// AES-GCM, so without it curl cannot connect. It is offered last, so a
	// client that knows an ETM MAC never picks it.
	macAlgorithms = []string{
		ssh.HMACSHA256ETM,
		ssh.HMACSHA512ETM,
		ssh.HMACSHA256,
	}
)

func pubKeyAuthAlgorithms(allowSHA1 bool) []string {
	algs := []string{
		ssh.KeyAlgoED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
	}
	if allowSHA1 {
		algs = append(algs, ssh.KeyAlgoRSA)
	}
	return algs
}

// clientHello is what peekClientHello read before the SSH library runs: the
// client's identification line and, when it arrived in time, the host key,
// cipher and MAC lists of the client's KEXINIT.
type clientHello struct {
	version  string
	hostKeys []string // client order; nil if not read
	ciphers  []string // client-to-server, client order; nil if not read
	macs     []string
}

// algorithmsFor chooses the ciphers and MACs to offer one client. An SSH
// client takes the first algorithm of its own list that the server offers,
// so the server's order alone decides nothing: OpenSSH lists
// chacha20-poly1305 and AES-CTR before AES-GCM, PuTTY lists AES-CTR and
// hmac-sha2-256 first, and neither would pick the fast algorithms from the
// full lists. When the client's KEXINIT is known, the server offers only
// the first cipher and MAC of its own preference that the client supports
// (server-side preference, as OpenSSH's compat code adjusts proposals per
// client), except that a client knowing no AES-GCM and no ETM MAC but
// chacha20-poly1305 gets that AEAD cipher rather than AES-CTR with the
// non-ETM MAC. The client then gets exactly those algorithms; nothing it
// did not list is forced on it. Without the client's lists, the full lists
// are offered and the client chooses.
func algorithmsFor(h clientHello) (ciphers, macs []string) {
	ciphers = preferServer(cipherAlgorithms, h.ciphers)
	macs = preferServer(macAlgorithms, h.macs)
	if len(ciphers) == 1 && len(macs) == 1 && !aeadCipher(ciphers[0]) && !strings.HasSuffix(macs[0], "-etm@openssh.com") &&
		slices.Contains(h.ciphers, ssh.CipherChaCha20Poly1305) {
		ciphers = []string{ssh.CipherChaCha20Poly1305}
	}
	return ciphers, macs
}

func aeadCipher(c string) bool {
	return c == ssh.CipherAES128GCM || c == ssh.CipherAES256GCM || c == ssh.CipherChaCha20Poly1305
}

func preferServer(server, client []string) []string {
	for _, a := range server {
		if slices.Contains(client, a) {
			return []string{a}
		}
	}
	return server
}

// kexinitWait bounds how long the server waits for the client's KEXINIT
// before it sends its own. RFC 4253 §7.1 lets both sides send KEXINIT at
// once, and every client tested does so without waiting for the server's
// (OpenSSH, PuTTY, JSch, paramiko, asyncssh, libssh2, Go); JSch computes
// its KEXINIT in a cold JVM and sends it 0.3 s after its identification
// line on an idle machine. A client that waits for the server's KEXINIT
// costs this much once per connection and then gets the full lists. A
// variable for tests.
var kexinitWait = 3 * time.Second

// versionConn replays what peekClientHello read (and, when the client's
// KEXINIT was not there in time, the packet its reader goroutine gets
// later), and swallows the SSH library's own identification line, which
// peekClientHello already sent. Read is called by one goroutine only, the
// SSH library's reader.
type versionConn struct {
	net.Conn
	replay  []byte
	pending <-chan firstPacket // the first binary packet, still being read
	skip    []byte
}

type firstPacket struct {
	pkt []byte
	err error
}

func (c *versionConn) Read(p []byte) (int, error) {
	if len(c.replay) == 0 && c.pending != nil {
		r := <-c.pending
		c.pending = nil
		if r.err != nil {
			return 0, r.err
		}
		c.replay = r.pkt
	}
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *versionConn) Write(p []byte) (int, error) {
	if c.skip != nil {
		if !bytes.Equal(p, c.skip) {
			return 0, errors.New("unexpected identification write")
		}
		c.skip = nil
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// maxKexinit bounds the peeked KEXINIT packet.
const maxKexinit = 64 << 10

// peekClientHello sends the server's identification line, reads the
// client's and waits up to kexinitWait for the client's first binary
// packet, its KEXINIT. It returns a connection that replays what it read.
// The packet is read by a goroutine, so that a client that waits for the
// server's KEXINIT is not stuck: after kexinitWait the SSH library goes on,
// and its first read waits for that goroutine. The deadlines of nc apply
// to every read.
func peekClientHello(nc net.Conn) (net.Conn, clientHello, error) {
	line := []byte(serverVersion + "\r\n")
	if _, err := nc.Write(line); err != nil {
		return nil, clientHello{}, err
	}
	var read []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(nc, b[:]); err != nil {
			return nil, clientHello{}, err
		}
		read = append(read, b[0])
		if b[0] == '\n' {
			break
		}
		if len(read) > 255 {
			return nil, clientHello{}, errors.New("identification line too long")
		}
	}
	h := clientHello{version: strings.TrimRight(string(read), "\r\n")}
	vc := &versionConn{Conn: nc, skip: line, replay: read}
	first := make(chan firstPacket, 1)
	go func() {
		pkt, err := readFirstPacket(nc)
		first <- firstPacket{pkt, err}
	}()
	timer := time.NewTimer(kexinitWait)
	defer timer.Stop()
	select {
	case r := <-first:
		if r.err != nil {
			return nil, clientHello{}, r.err
		}
		vc.replay = append(vc.replay, r.pkt...)
		padding := int(r.pkt[4])
		if payload := r.pkt[5:]; padding < len(payload) {
			h.hostKeys, h.ciphers, h.macs = parseKexinit(payload[:len(payload)-padding])
		}
	case <-timer.C:
		vc.pending = first
	}
	return vc, h, nil
}

// readFirstPacket reads one unencrypted binary packet (RFC 4253 §6):
// length, padding length, payload and padding.
func readFirstPacket(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 2 || n > maxKexinit {
		return nil, errors.New("bad first packet")
	}
	pkt := make([]byte, 4+n)
	copy(pkt, hdr[:])
	if _, err := io.ReadFull(r, pkt[5:]); err != nil {
		return nil, err
	}
	return pkt, nil
}

// parseKexinit returns the host key algorithms, and the ciphers and MACs
// a KEXINIT payload lists for both directions, in client-to-server order,
// or nils if it is not one.
func parseKexinit(p []byte) (hostKeys, ciphers, macs []string) {
	const msgKexinit = 20
	if len(p) < 17 || p[0] != msgKexinit {
		return nil, nil, nil
	}
	p = p[17:]
	var lists [6][]string // kex, host key, cipher c2s, s2c, mac c2s, s2c
	for i := range lists {
		if len(p) < 4 {
			return nil, nil, nil
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return nil, nil, nil
		}
		lists[i] = strings.Split(string(p[4:4+n]), ",")
		p = p[4+n:]
	}
	both := func(a, b []string) []string {
		return slices.DeleteFunc(a, func(x string) bool { return !slices.Contains(b, x) })
	}
	return lists[1], both(lists[2], lists[3]), both(lists[4], lists[5])
}
