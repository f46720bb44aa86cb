package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
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
	name    string
	trusted bool // a completed upload (sftpd's Notify)
	size    int64
	mtime   time.Time
}

// stamp identifies a processed file, to recognize it when the scan or the
// watcher reports it again.
type stamp struct {
	size   int64
	mtime  time.Time
	sha256 string
}

// approveReq asks the loop to release a held batch.
type approveReq struct {
	ctx   context.Context
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
	last    time.Time // latest trusted notification
	redos   []state.Batch
	stamps  map[string]stamp // by lower-case name
	loaded  bool

	started bool // guarded by p.mu
}

func newOrgLoop(org string, p *Pipeline) *orgLoop {
	l := &orgLoop{
		org: org, p: p,
		wake:    make(chan struct{}, 1),
		reqs:    make(chan approveReq),
		pending: map[string]*pendingFile{},
		stamps:  map[string]stamp{},
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

// redo queues an interrupted batch; redos run before anything else.
func (l *orgLoop) redo(b state.Batch) {
	l.mu.Lock()
	l.redos = append(l.redos, b)
	l.mu.Unlock()
	l.poke()
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
		f.size, f.mtime = fi.Size(), fi.ModTime()
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
	for {
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		var redo *state.Batch
		if len(l.redos) > 0 {
			redo = &l.redos[0]
			l.redos = l.redos[1:]
		}
		l.mu.Unlock()
		if redo != nil {
			l.p.redoBatch(ctx, l, *redo)
			continue
		}
		files, wait := l.due(time.Now())
		if files != nil {
			l.process(ctx, files)
			continue
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
			b, err := l.p.approveInLoop(req.ctx, l, req.batch)
			req.resp <- approveResp{b, err}
		}
		timer.Stop()
	}
}

// known reports whether an untrusted file is one a batch already took:
// same size and time, or same size and content.
func (l *orgLoop) known(f pendingFile) bool {
	l.mu.Lock()
	if !l.loaded {
		l.loaded = true
		l.mu.Unlock()
		l.loadStamps()
		l.mu.Lock()
	}
	st, ok := l.stamps[strings.ToLower(f.name)]
	l.mu.Unlock()
	if !ok || st.size != f.size {
		return false
	}
	if st.mtime.Equal(f.mtime) {
		return true
	}
	fh, err := os.Open(filepath.Join(l.p.cfg.OrgsRoot, l.org, f.name))
	if err != nil {
		return false
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return false
	}
	if hex.EncodeToString(h.Sum(nil)) != st.sha256 {
		return false
	}
	l.remember(f.name, stamp{f.size, f.mtime, st.sha256})
	return true
}

func (l *orgLoop) remember(name string, s stamp) {
	l.mu.Lock()
	l.stamps[strings.ToLower(name)] = s
	l.mu.Unlock()
}

// loadStamps reads the files of the organization's recent batches.
func (l *orgLoop) loadStamps() {
	bs, err := l.p.db.Batches(l.org, "", 50)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bs { // newest first
		for _, f := range b.Files {
			k := strings.ToLower(f.Name)
			if _, ok := l.stamps[k]; !ok && f.SHA256 != "" {
				l.stamps[k] = stamp{f.Size, f.ModTime, f.SHA256}
			}
		}
	}
}
