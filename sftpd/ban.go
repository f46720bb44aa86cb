package sftpd

import (
	"sync"
	"time"
)

// banList is the fail-and-ban limiter of SPEC §3: an address with
// Limits.BanFailures failed authentication attempts within
// Limits.BanWindow is refused for Limits.BanDuration. It is keyed by IP
// address (not port) and safe for concurrent use; the clock is injectable
// for tests.
type banList struct {
	now func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time // recent failure times, oldest first
	banned   map[string]time.Time   // address -> end of ban
}

func newBanList(now func() time.Time) *banList {
	return &banList{now: now, failures: map[string][]time.Time{}, banned: map[string]time.Time{}}
}

// Banned reports whether addr is banned now.
func (b *banList) Banned(addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.banned[addr]
	if !ok {
		return false
	}
	if !b.now().Before(until) {
		delete(b.banned, addr)
		return false
	}
	return true
}

// Fail records n failed authentication attempts of addr, made now, and
// reports whether they started a ban. SPEC §3 counts attempts, not
// connections: one connection may bring several.
func (b *banList) Fail(addr string, n int, l Limits) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.sweep(now, l)
	cut := now.Add(-l.BanWindow)
	times := b.failures[addr]
	for len(times) > 0 && !times[0].After(cut) {
		times = times[1:]
	}
	// Only the newest BanFailures times matter; keep no more, however many
	// attempts a scan reports.
	for range min(n, l.BanFailures) {
		times = append(times, now)
	}
	if len(times) < l.BanFailures {
		b.failures[addr] = times
		return false
	}
	delete(b.failures, addr)
	b.banned[addr] = now.Add(l.BanDuration)
	return true
}

// sweep drops expired entries once the maps have grown, so a scan from many
// addresses cannot grow them without bound.
func (b *banList) sweep(now time.Time, l Limits) {
	if len(b.failures)+len(b.banned) < 4096 {
		return
	}
	cut := now.Add(-l.BanWindow)
	for a, times := range b.failures {
		if !times[len(times)-1].After(cut) {
			delete(b.failures, a)
		}
	}
	for a, until := range b.banned {
		if !now.Before(until) {
			delete(b.banned, a)
		}
	}
}
