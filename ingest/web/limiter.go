package web

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Failed sign-ins are limited per address, so that an operator's password
// cannot be guessed at the speed of bcrypt: after signinFailures failures
// within signinWindow, an address is refused until the oldest of them is
// that old. (The API token is 32 random bytes and cannot be guessed.)
const (
	signinFailures = 10
	signinWindow   = 10 * time.Minute
)

type signinLimiter struct {
	now func() time.Time

	mu   sync.Mutex
	fail map[string][]time.Time // by address, oldest first
}

func newSigninLimiter() *signinLimiter {
	return &signinLimiter{now: time.Now, fail: map[string][]time.Time{}}
}

// remoteIP is the address a limit applies to: the connection's IP.
func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// allowed reports whether addr may try to sign in now.
func (l *signinLimiter) allowed(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(addr)) < signinFailures
}

// failed counts a failed sign-in of addr.
func (l *signinLimiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail[addr] = append(l.recent(addr), l.now())
	if len(l.fail) > 10_000 { // a flood of addresses: forget the quiet ones
		for a := range l.fail {
			if len(l.recent(a)) == 0 {
				delete(l.fail, a)
			}
		}
	}
}

// recent returns addr's failures within the window; l.mu is held.
func (l *signinLimiter) recent(addr string) []time.Time {
	ts := l.fail[addr]
	cut := l.now().Add(-signinWindow)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	if i == len(ts) {
		delete(l.fail, addr)
		return nil
	}
	ts = ts[i:]
	l.fail[addr] = ts
	return ts
}
