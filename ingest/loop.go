package ingest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rosterd/rosterd/state"
)

// minStill is the least time a file the watcher or the scan found (not a
// completed SFTP upload) must keep its size and modification time before
// it is taken, even with a settle window of 0: an outside process may
// still be writing it.
const minStill = time.Second

// pendingFile is a file waiting for the organization's next batch.
type pendingFile struct {
	name         string
	trusted      bool // a completed upload (sftpd's Notify)
	size         int64
	mtime, ctime time.Time // an untrusted file's, from its last stat
}

// approveReq asks the loop to release a held batch.
type approveReq struct {
	batch string
	resp  chan approveResp
}

type approveResp struct {
	b   state.Batch
	err error
}

// orgLoop is one organization's settle loop: it collects notifications,
// waits for the settle window, and runs batches one at a time. One
// goroutine (run) owns the batch work; add, redo and approve only hand
// things to it.
type orgLoop struct {
	org  string
	p    *Pipeline
	wake chan struct{}
	reqs chan approveReq

	// settle returns the organization's settle window; process runs one
	// batch. Tests replace them.
	settle  func() time.Duration
	process func(ctx context.Context, files []pendingFile)
	stat    func(name string) (os.FileInfo, error)

	mu      sync.Mutex
	pending map[string]*pendingFile
	last    time.Time     // latest trusted notification
	resume  []state.Batch // unfinished at start-up, oldest first (order.go)
	// formAt is when forming a batch may be tried again after the state
	// refused to record one (formFails in a row).
	formAt    time.Time
	formFails int

	// check: another instance recorded a batch (Pipeline.Wake); forget:
	// completion records to drop (forgetGone). Both wait for the lease.
	check  bool
	forget []string

	// Owned by run: the batch waiting for its retry, if any (order.go),
	// and the batch lease (lease.go).
	waiting *state.Batch
	retryAt time.Time
	lease   *loopLease

	started bool // guarded by p.mu
}

func newOrgLoop(org string, p *Pipeline) *orgLoop {
	l := &orgLoop{
		org: org, p: p,
		wake:    make(chan struct{}, 1),
		reqs:    make(chan approveReq),
		pending: map[string]*pendingFile{},
	}
	l.settle = func() time.Duration {
		s, err := p.settingsFor(org)
		if err != nil {
			return 0
		}
		return s.settle
	}
	l.process = func(ctx context.Context, files []pendingFile) { p.newBatch(ctx, l, files) }
	l.stat = func(name string) (os.FileInfo, error) {
		return os.Lstat(filepath.Join(p.cfg.OrgsRoot, org, name))
	}
	return l
}

func (l *orgLoop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// add records a notification; repeats collapse and restart the window.
func (l *orgLoop) add(name string, trusted bool) {
	now := time.Now()
	l.mu.Lock()
	f := l.pending[name]
	if f == nil {
		f = &pendingFile{name: name}
		l.pending[name] = f
	}
	if trusted {
		f.trusted = true
		l.last = now
	} else if l.last.IsZero() {
		l.last = now
	}
	l.mu.Unlock()
	l.poke()
}

// resumeWith hands the loop the organization's unfinished batches found
// at start-up (oldest first); run deals with them before anything else.
func (l *orgLoop) resumeWith(bs []state.Batch) {
	l.mu.Lock()
	l.resume = append(l.resume, bs...)
	l.mu.Unlock()
	l.poke()
}

// requeue puts back the files of a batch the state could not record, to
// be formed again at after.
func (l *orgLoop) requeue(files []pendingFile, after time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range files {
		if p := l.pending[f.name]; p != nil {
			p.trusted = p.trusted || f.trusted // a newer notification came meanwhile
			continue
		}
		l.pending[f.name] = &f
	}
	l.formAt = after
}

// due returns the files of the next batch when it is time, else how long
// to wait (0 = until notified).
func (l *orgLoop) due(now time.Time) ([]pendingFile, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil, 0
	}
	settle := l.settle()
	wait := time.Duration(0)
	later := func(d time.Duration) {
		if d > wait {
			wait = d
		}
	}
	if d := l.last.Add(settle).Sub(now); d > 0 {
		later(d)
	}
	if d := l.formAt.Sub(now); d > 0 {
		later(d)
	}
	still := max(settle, minStill)
	for name, f := range l.pending {
		if f.trusted {
			continue
		}
		fi, err := l.stat(name)
		if err != nil || !fi.Mode().IsRegular() {
			delete(l.pending, name) // gone, or not a plain file: nothing to take
			continue
		}
		f.size, f.mtime, f.ctime = fi.Size(), fi.ModTime(), changeTime(fi)
		// Every write, rename or attribute change moves the change time
		// (the modification time a client may set to the past): a file
		// is still once its change time is older than the window.
		if d := changeTime(fi).Add(still).Sub(now); d > 0 {
			later(min(d, still))
		}
	}
	if len(l.pending) == 0 {
		return nil, 0
	}
	if wait > 0 {
		return nil, wait
	}
	files := make([]pendingFile, 0, len(l.pending))
	for _, f := range l.pending {
		files = append(files, *f)
	}
	clear(l.pending)
	l.last = time.Time{}
	return files, 0
}

// run is the loop. It returns when ctx is done, after the batch in
// progress (if any) finished or was abandoned.
func (l *orgLoop) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	defer l.release()
	for {
		if ctx.Err() != nil {
			return
		}
		// The batch work runs under the organization's lease (lease.go),
		// in wctx, which ends when the lease is lost.
		wctx, wait, leased := l.leased(ctx)
		if leased {
			l.mu.Lock()
			resume := l.resume
			l.resume = nil
			l.mu.Unlock()
			if len(resume) > 0 {
				l.p.resume(wctx, l, resume)
				continue
			}
			// Settled files first: their batch supersedes a waiting one, whose
			// retry would otherwise keep them waiting.
			now := time.Now()
			var files []pendingFile
			files, wait = l.due(now)
			if files != nil {
				l.process(wctx, files)
				continue
			}
			if l.waiting != nil && !now.Before(l.retryAt) {
				l.p.retry(wctx, l)
				continue
			}
			if l.waiting != nil {
				if d := l.retryAt.Sub(now); wait == 0 || d < wait {
					wait = d
				}
			}
			if wait == 0 && l.lease != nil && !l.hasWork() {
				continue // idle: leased gives the lease up
			}
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-timer.C:
		case req := <-l.reqs:
			b, err := l.approve(ctx, req)
			req.resp <- approveResp{b, err}
		}
		timer.Stop()
	}
}
