package main

import (
	"log/slog"
	"sync"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

// The audit sink's batching: a burst of uploads costs one bbolt commit
// (one fsync) per auditFlushN records or per auditFlushEvery, not one per
// record. Up to auditBuffer records wait; beyond that they are dropped
// (and counted in the log), because sftpd must never wait for the disk.
const (
	auditBuffer     = 8192
	auditFlushN     = 512
	auditFlushEvery = time.Second
)

// auditSink is sftpd's Audit: it turns sftpd.AuditRecord into
// state.AuditRecord and writes them to state in batches from one
// goroutine, which Close stops after writing what is buffered. It lives
// here because state and sftpd import no rosterd package.
type auditSink struct {
	db   auditStore
	log  *slog.Logger
	in   chan state.AuditRecord
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	dropped int
}

// openAudit starts the audit sink of the daemon and returns it for
// sftpd.Config; run closes it.
func (d *daemonState) openAudit() *auditSink {
	d.audit = newAuditSink(d.db, d.log)
	return d.audit
}

// auditStore is where the audit sink writes: either store.
type auditStore interface {
	AppendAudit(recs []state.AuditRecord, keep int) error
}

func newAuditSink(db auditStore, log *slog.Logger) *auditSink {
	a := &auditSink{
		db:   db,
		log:  log,
		in:   make(chan state.AuditRecord, auditBuffer),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go a.run()
	return a
}

// Record queues r without blocking; when the buffer is full, r is dropped.
func (a *auditSink) Record(r sftpd.AuditRecord) {
	select {
	case a.in <- state.AuditRecord{
		Org: r.Org, Time: r.Time.UTC(), Event: r.Event, RemoteAddr: r.RemoteAddr, KeyFP: r.KeyFP,
		Session: r.Session, File: r.File, Target: r.Target, Bytes: r.Bytes, SHA256: r.SHA256,
		Duration: r.Duration, Reason: r.Reason,
	}:
	default:
		a.mu.Lock()
		a.dropped++
		a.mu.Unlock()
	}
}

// Close writes what is buffered and stops the sink. Records that arrive
// afterwards are dropped. Call it once the SFTP server has shut down.
func (a *auditSink) Close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

func (a *auditSink) run() {
	defer close(a.done)
	tick := time.NewTicker(auditFlushEvery)
	defer tick.Stop()
	buf := make([]state.AuditRecord, 0, auditFlushN)
	for {
		select {
		case r := <-a.in:
			if buf = append(buf, r); len(buf) >= auditFlushN {
				buf = a.flush(buf)
			}
		case <-tick.C:
			buf = a.flush(buf)
		case <-a.stop:
			for {
				select {
				case r := <-a.in:
					if buf = append(buf, r); len(buf) >= auditFlushN {
						buf = a.flush(buf)
					}
				default:
					a.flush(buf)
					return
				}
			}
		}
	}
}

// flush writes buf in one transaction and returns it emptied. A failed
// write is logged and its records are lost: the log holds them too.
func (a *auditSink) flush(buf []state.AuditRecord) []state.AuditRecord {
	a.mu.Lock()
	dropped := a.dropped
	a.dropped = 0
	a.mu.Unlock()
	if dropped > 0 {
		a.log.Warn("audit records dropped: the audit buffer was full", "count", dropped)
	}
	if len(buf) == 0 {
		return buf
	}
	if err := a.db.AppendAudit(buf, 0); err != nil {
		a.log.Error("write audit records", "count", len(buf), "err", err)
	}
	clear(buf)
	return buf[:0]
}
