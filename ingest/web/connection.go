package web

import (
	"net"
	"net/http"
	"strings"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rosterd/rosterd/sftpd"
)

// Connection is what an admin's SFTP client needs: where to connect, as
// whom, and how to recognize the server.
type Connection struct {
	Host, Port, User string
	// Fingerprints are the host keys as `ssh-keygen -lf` prints the
	// KnownHosts lines: "256 SHA256:... [host]:port (ED25519)".
	Fingerprints []string
	// KnownHosts holds one known_hosts line per host key.
	KnownHosts string
	// HostPattern is how the host appears in known_hosts and in ssh's
	// messages: "host", or "[host]:port" for a port other than 22.
	HostPattern string
}

// connection returns the connection details for user, with the host the
// request was made to when the configured SFTP address has none.
func (s *Server) connection(r *http.Request, user string) Connection {
	addr := s.cfg.SFTPAddr()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, "22"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	c := Connection{Host: host, Port: port, User: user, HostPattern: knownhosts.Normalize(net.JoinHostPort(host, port))}
	var lines []string
	for _, k := range s.cfg.HostKeys {
		lines = append(lines, knownhosts.Line([]string{c.HostPattern}, k))
		c.Fingerprints = append(c.Fingerprints, sftpd.KeygenLine(k, c.HostPattern))
	}
	c.KnownHosts = strings.Join(lines, "\n") + "\n"
	return c
}
