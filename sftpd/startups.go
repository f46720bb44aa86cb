package sftpd

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Startups is OpenSSH's MaxStartups rule for connections that have not
// authenticated yet (SPEC §3), written "start:rate:full": below Start
// such connections, every new connection is let in; from Start on, a new
// one is dropped with probability Rate percent, rising linearly to 100 %
// at Full. "N" alone means N:100:N, a hard cap. The zero value means the
// default, 10:30:100.
type Startups struct {
	Start, Rate, Full int
}

// DefaultStartups is the default of Limits.MaxStartups, OpenSSH's.
var DefaultStartups = Startups{Start: 10, Rate: 30, Full: 100}

// ParseStartups parses "start:rate:full" or "full". It requires
// 0 <= start <= full, full >= 1 and 1 <= rate <= 100, as sshd does.
func ParseStartups(s string) (Startups, error) {
	parts := strings.Split(s, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return Startups{}, fmt.Errorf("%q is not start:rate:full such as \"10:30:100\", or a single number", s)
		}
		nums[i] = n
	}
	var m Startups
	switch len(nums) {
	case 1:
		m = Startups{Start: nums[0], Rate: 100, Full: nums[0]}
	case 3:
		m = Startups{Start: nums[0], Rate: nums[1], Full: nums[2]}
	default:
		return Startups{}, fmt.Errorf("%q is not start:rate:full such as \"10:30:100\", or a single number", s)
	}
	switch {
	case m.Full < 1:
		return Startups{}, fmt.Errorf("%q: full must be at least 1", s)
	case m.Start > m.Full:
		return Startups{}, fmt.Errorf("%q: start must not be above full", s)
	case m.Rate < 1 || m.Rate > 100:
		return Startups{}, fmt.Errorf("%q: rate is a percentage from 1 to 100", s)
	}
	return m, nil
}

// String writes m as "start:rate:full".
func (m Startups) String() string { return fmt.Sprintf("%d:%d:%d", m.Start, m.Rate, m.Full) }

// UnmarshalText parses m with ParseStartups (for TOML and flags).
func (m *Startups) UnmarshalText(b []byte) error {
	v, err := ParseStartups(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText writes m as "start:rate:full".
func (m Startups) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// dropPercent is the probability, in percent, that a new connection is
// dropped while n connections have not authenticated: sshd's
// should_drop_connection, integer arithmetic included.
func (m Startups) dropPercent(n int) int {
	switch {
	case n < m.Start:
		return 0
	case n >= m.Full || m.Rate >= 100:
		return 100
	}
	return m.Rate + (100-m.Rate)*(n-m.Start)/(m.Full-m.Start)
}

// drop decides for a new connection while n have not authenticated; r is
// a uniform random number in [0, 100).
func (m Startups) drop(n, r int) bool { return r < m.dropPercent(n) }

// Reasons a connection is refused before the SSH handshake; they are the
// reason label of rosterd_sftp_refusals_total and the log's "reason".
const (
	reasonMaxStartups        = "max_startups"
	reasonMaxStartupsPerAddr = "max_startups_per_address"
	reasonLoginGraceTime     = "login_grace_time"
)

// startups counts the connections that have not authenticated, in total
// and per address, under Server.mu.
type startups struct {
	total  int
	byAddr map[string]int
}

// admit counts a new connection from addr as unauthenticated, or returns
// the reason it is refused.
func (s *Server) admit(addr string, l Limits) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.startups.byAddr[addr] >= l.MaxStartupsPerAddress {
		return reasonMaxStartupsPerAddr
	}
	if l.MaxStartups.drop(s.startups.total, rand.IntN(100)) {
		return reasonMaxStartups
	}
	s.startups.total++
	s.startups.byAddr[addr]++
	s.metrics.unauthenticated.Set(float64(s.startups.total))
	return ""
}

// authenticated ends what admit counted: the connection has authenticated
// or is gone. Call it once per admitted connection.
func (s *Server) authenticated(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startups.total--
	if s.startups.byAddr[addr]--; s.startups.byAddr[addr] <= 0 {
		delete(s.startups.byAddr, addr)
	}
	s.metrics.unauthenticated.Set(float64(s.startups.total))
}

// remoteIP is the address part of a connection's remote address, the key
// of the per-address counts and of the ban list.
func remoteIP(nc net.Conn) string {
	remote := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// throttle lets a repeated log line through at most once per interval
// and counts the ones it held back, so that a flood of drops or accept
// errors costs a metric increment each and a log line every few seconds.
type throttle struct {
	every time.Duration

	mu   sync.Mutex
	last time.Time
	held int
}

// allow reports whether to log now, and how many were held back since the
// last line that was let through.
func (t *throttle) allow(now time.Time) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.held++
		return false, 0
	}
	held := t.held
	t.last, t.held = now, 0
	return true, held
}
