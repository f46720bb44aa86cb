package sftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"

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
// client's identification line and, for clients known to send it without
// waiting for the server's, its KEXINIT cipher and MAC lists.
type clientHello struct {
	version string
	ciphers []string // client-to-server, client order; nil if not read
	macs    []string
}

// ciphersFor and macsFor choose what to offer one client. An SSH client
// takes the first algorithm of its own list that the server offers, so the
// server's order alone decides nothing: OpenSSH lists chacha20-poly1305
// and AES-CTR before AES-GCM and would never pick GCM from the full list.
// When the client's KEXINIT is known, the server offers only the first
// algorithm of its own preference that the client supports (server-side
// preference, as OpenSSH's compat code adjusts proposals per client). The
// client then gets exactly that algorithm; nothing it did not list is
// forced on it.
func ciphersFor(h clientHello) []string {
	return preferServer(cipherAlgorithms, h.ciphers)
}

func macsFor(h clientHello) []string {
	return preferServer(macAlgorithms, h.macs)
}

func preferServer(server, client []string) []string {
	for _, a := range server {
		if slices.Contains(client, a) {
			return []string{a}
		}
	}
	return server
}

// kexinitClients are the identification prefixes of clients known to send
// their KEXINIT right after their identification line, without waiting for
// the server's (RFC 4253 §7.1 allows both). Only for them does the server
// read the KEXINIT ahead of the SSH library; any other client gets the full
// lists.
var kexinitClients = []string{"SSH-2.0-OpenSSH_", "SSH-2.0-paramiko_", "SSH-2.0-Go", "SSH-2.0-libssh2_"}

// versionConn replays what peekClientHello read and swallows the SSH
// library's own identification line, which peekClientHello already sent.
type versionConn struct {
	net.Conn
	replay []byte
	skip   []byte
}

func (c *versionConn) Read(p []byte) (int, error) {
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
// client's and, for clients in kexinitClients, the client's first binary
// packet (its KEXINIT). It returns a connection that replays what it read.
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
	vc := &versionConn{Conn: nc, skip: line}
	if !slices.ContainsFunc(kexinitClients, func(p string) bool { return strings.HasPrefix(h.version, p) }) {
		vc.replay = read
		return vc, h, nil
	}
	var hdr [5]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, clientHello{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 2 || n > maxKexinit {
		return nil, clientHello{}, errors.New("bad first packet")
	}
	pkt := make([]byte, 4+n)
	copy(pkt, hdr[:])
	if _, err := io.ReadFull(nc, pkt[5:]); err != nil {
		return nil, clientHello{}, err
	}
	vc.replay = append(read, pkt...)
	padding := int(hdr[4])
	if payload := pkt[5:]; padding < len(payload) {
		h.ciphers, h.macs = parseKexinit(payload[:len(payload)-padding])
	}
	return vc, h, nil
}

// parseKexinit returns the ciphers and MACs a KEXINIT payload lists for
// both directions, in client-to-server order, or nils if it is not one.
func parseKexinit(p []byte) (ciphers, macs []string) {
	const msgKexinit = 20
	if len(p) < 17 || p[0] != msgKexinit {
		return nil, nil
	}
	p = p[17:]
	var lists [6][]string // kex, host key, cipher c2s, s2c, mac c2s, s2c
	for i := range lists {
		if len(p) < 4 {
			return nil, nil
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return nil, nil
		}
		lists[i] = strings.Split(string(p[4:4+n]), ",")
		p = p[4+n:]
	}
	both := func(a, b []string) []string {
		return slices.DeleteFunc(a, func(x string) bool { return !slices.Contains(b, x) })
	}
	return both(lists[2], lists[3]), both(lists[4], lists[5])
}
