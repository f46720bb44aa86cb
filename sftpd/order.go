package sftpd

import (
	"io"
	"slices"
	"sync"
)

// SPEC §3: requests on one handle take effect in the order the client sent
// them. pkg/sftp v1.13's request server does not do that by itself: its
// packet manager hands SSH_FXP_READ and SSH_FXP_WRITE to eight concurrent
// workers and every other request to one sequential worker, and only
// SSH_FXP_CLOSE waits for the reads and writes before it. So an FSETSTAT
// that lftp sends right behind its last writes can run before they land,
// and the late writes then move the modification time to now; a read
// behind a write can miss it; and two writes on an append handle can land
// in either order.
//
// order restores the client's order where it matters, in the framer,
// before pkg/sftp sees a request: a request is passed on only once the
// requests it depends on have been answered (their replies are written, so
// they took effect). The rules:
//
//   - a read or write on a handle waits for the earlier writes on that
//     handle whose bytes it overlaps (and a write also for overlapping
//     reads); reads and writes of different ranges stay concurrent, so
//     upload throughput is unchanged;
//   - any other request on a handle (fsetstat, fstat, fsync, close) waits
//     for everything earlier on that handle, and everything later on that
//     handle waits for it;
//   - a request that changes a file by path (setstat, rename,
//     posix-rename, remove) waits for every request in flight in the
//     session, and every later request waits for it.
//
// Writes on a handle opened with SSH_FXF_APPEND get their offsets from
// order, in arrival order, relative to the end of the file when the
// upload started (see upload.WriteAt): append appends wherever the client
// says it writes, as on OpenSSH.
type order struct {
	mu       sync.Mutex
	cond     sync.Cond
	handles  map[string]*fileHandle // open file handles, by the handle string
	opens    map[uint32]openReq     // OPEN requests awaiting a reply, by id
	ops      map[uint32]*fileHandle // requests in flight by id; pathOps for path requests
	pathOps  fileHandle             // path requests in flight
	total    int                    // requests in flight
	broken   bool                   // the session is over: nothing waits any more
	noDirect bool                   // the framer applies no writes itself any more (see direct.go)
}

// opKind says how a request conflicts with others on its handle.
type opKind uint8

const (
	opRead  opKind = iota // reads [off, end)
	opWrite               // writes [off, end)
	opOther               // conflicts with everything on its handle
)

// op is a request passed to pkg/sftp and not answered yet.
type op struct {
	id       uint32
	kind     opKind
	off, end int64
}

func (o op) conflicts(kind opKind, off, end int64) bool {
	if o.kind == opOther || kind == opOther {
		return true
	}
	if o.kind == opRead && kind == opRead {
		return false
	}
	return off < o.end && o.off < end
}

// openReq is an SSH_FXP_OPEN request awaiting its reply.
type openReq struct {
	path   string // as the client sent it
	pflags uint32
}

// fileHandle is what order knows of one open file handle.
type fileHandle struct {
	append bool
	next   int64       // relative offset of the next append write
	ops    []op        // requests in flight on this handle, in arrival order
	up     io.WriterAt // the upload the handle writes, when known (see direct.go)
}

func newOrder() *order {
	o := &order{handles: map[string]*fileHandle{}, opens: map[uint32]openReq{}, ops: map[uint32]*fileHandle{}}
	o.cond.L = &o.mu
	return o
}

// waitLocked waits until cond holds or the session is over.
func (o *order) waitLocked(blocked func() bool) {
	for !o.broken && blocked() {
		o.cond.Wait()
	}
}

// add records id as in flight on h; a request reusing the id of one in
// flight waits for it first, so every reply matches one op.
func (o *order) addLocked(h *fileHandle, x op) {
	o.waitLocked(func() bool { _, dup := o.ops[x.id]; return dup })
	if o.broken {
		return
	}
	h.ops = append(h.ops, x)
	o.ops[x.id] = h
	o.total++
}

// handleOp orders a request on handle: it waits for what the request
// depends on, then records it as in flight. For a write on an append
// handle it returns the offset the write must use (relative to the end of
// the file when the upload started) and rewrite true. It returns false
// when the session ended while it waited.
func (o *order) handleOp(id uint32, handle []byte, kind opKind, off, n int64) (newOff int64, rewrite, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.handles[string(handle)]
	if h == nil {
		// Not a file handle of this session (a folder's, or a stale
		// one): pkg/sftp answers it.
		o.waitLocked(func() bool { return len(o.pathOps.ops) > 0 })
		return off, false, !o.broken
	}
	if kind == opWrite && h.append {
		off, rewrite = h.appendOffset(n), true
	}
	end := off + n
	o.waitLocked(func() bool {
		if len(o.pathOps.ops) > 0 {
			return true
		}
		return slices.ContainsFunc(h.ops, func(x op) bool { return x.conflicts(kind, off, end) })
	})
	o.addLocked(h, op{id: id, kind: kind, off: off, end: end})
	return off, rewrite, !o.broken
}

// appendOffset returns the relative offset of the next append write of n
// bytes.
func (h *fileHandle) appendOffset(n int64) int64 {
	off := h.next
	h.next += n
	return off
}

// direct returns the upload a write of n bytes on handle may be applied
// to at once, by the framer (see direct.go), and the offset to write at
// (for an append handle relative, as handleOp gives it): only when the
// handle's upload is known and nothing is in flight that the write would
// have to wait for. Else it returns nil and changes nothing; the write
// then goes through handleOp to pkg/sftp.
func (o *order) direct(handle []byte, off, n int64) (io.WriterAt, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.handles[string(handle)]
	if h == nil || h.up == nil || o.noDirect || o.broken || len(o.pathOps.ops) > 0 || len(h.ops) > 0 {
		return nil, 0
	}
	if h.append {
		off = h.appendOffset(n)
	}
	return h.up, off
}

// pathOp orders a request that changes a file by path: it waits for every
// request in flight, and later reads and writes wait for it. It returns
// false when the session ended while it waited.
func (o *order) pathOp(id uint32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waitLocked(func() bool { return o.total > 0 })
	o.addLocked(&o.pathOps, op{id: id, kind: opOther})
	return !o.broken
}

// open records an OPEN request, so that its HANDLE reply is known as a
// file handle. Requests that are neither reads nor writes (open, stat,
// rename, ...) need no more: pkg/sftp runs them one at a time, in order.
func (o *order) open(id uint32, path []byte, pflags uint32) {
	o.mu.Lock()
	o.opens[id] = openReq{path: string(path), pflags: pflags}
	o.mu.Unlock()
}

// attach records the upload a file handle writes (see direct.go).
func (o *order) attach(handle []byte, w io.WriterAt) {
	o.mu.Lock()
	if h := o.handles[string(handle)]; h != nil {
		h.up = w
	}
	o.mu.Unlock()
}

// stopDirect makes every later write of the session go through pkg/sftp
// (see direct.go).
func (o *order) stopDirect() {
	o.mu.Lock()
	o.noDirect = true
	o.mu.Unlock()
}

// closed forgets handle once its CLOSE is passed on (after everything
// before it on the handle was answered).
func (o *order) closed(handle []byte) {
	o.mu.Lock()
	delete(o.handles, string(handle))
	o.mu.Unlock()
}

// replied is called for every reply pkg/sftp writes. handle is the handle
// of a HANDLE reply to an OPEN, else nil. For the reply to an OPEN it
// returns the OPEN and true.
func (o *order) replied(id uint32, handle []byte) (opened openReq, isOpen bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if req, ok := o.opens[id]; ok {
		delete(o.opens, id)
		opened, isOpen = req, true
		if handle != nil {
			o.handles[string(handle)] = &fileHandle{append: req.pflags&fxfAppend != 0}
		}
	}
	h, ok := o.ops[id]
	if !ok {
		return opened, isOpen
	}
	delete(o.ops, id)
	o.total--
	if i := slices.IndexFunc(h.ops, func(x op) bool { return x.id == id }); i >= 0 {
		h.ops = slices.Delete(h.ops, i, i+1)
	}
	o.cond.Broadcast()
	return opened, isOpen
}

// wantsHandle reports whether id is an OPEN awaiting its reply, so the
// framer collects the handle of a HANDLE reply only when it is needed.
func (o *order) wantsHandle(id uint32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.opens[id]
	return ok
}

// stop releases every waiter: the session's output failed or it ended.
func (o *order) stop() {
	o.mu.Lock()
	o.broken = true
	o.cond.Broadcast()
	o.mu.Unlock()
}
