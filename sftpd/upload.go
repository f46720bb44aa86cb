package sftpd

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// maxHashPending bounds the out-of-order write data an upload buffers to
// hash the file as it arrives; beyond it the hash is computed at close by
// reading the file back.
const maxHashPending = 32 << 20

// upload is one open write handle. SPEC §3: every upload, whatever its
// name, is written to a hidden temporary file (TempPrefix) in the
// organization folder and renamed onto its name only when the client closes
// the handle cleanly; a dropped connection, a size-limit breach or a
// shutdown discards it, so the previous file stays untouched and nothing is
// signalled.
//
// The staged file is made when the handle first changes the content: at
// open when it creates the file or truncates it, else at the first write
// or size change, which first copies the stored file into it (resume,
// offset writes, append). A handle that never changes the content (touch
// over sshfs: open for writing, set the times, close; or a read-write
// handle only read) stages nothing: its mode and time changes apply to
// the stored file in place, and its close signals nothing, so it cannot
// put back an older copy over a newer upload either.
//
// On a handle opened with SSH_FXF_APPEND, the framer (see order) gives
// each write an offset relative to the end of the file when it was
// staged, in the order the client sent the writes; WriteAt adds that end.
//
// pkg/sftp calls WriteAt from several goroutines and reuses the slice it
// passes (WithRSAllocator), so nothing here keeps p after WriteAt returns.
type upload struct {
	fs      *orgFS
	name    string // target name in the organization folder
	max     int64
	start   time.Time
	appends bool     // opened with SSH_FXF_APPEND
	orig    *os.File // the stored file the upload starts from; nil when it created or truncated it
	release func()   // gives back the session's handle

	mu       sync.Mutex
	tmp      string   // staged name
	file     *os.File // staged file; nil until the content changes
	base     int64    // append handles: where relative offset 0 is
	appended int64    // append handles: bytes written so far
	size     int64    // highest end offset written
	hash     hash.Hash
	hashed   int64            // prefix of the file fed to hash
	pending  map[int64][]byte // out-of-order writes not hashed yet
	pendingN int
	rehash   bool  // the in-order hash is broken: hash the file at close
	failed   error // first write error or limit breach
	aborted  error // transfer error reported by pkg/sftp
	closed   bool
	written  int64 // bytes put into the staged file (Storage accounting)
	admitted int64 // bytes Storage admitted so far
	noSpace  bool  // failed because Storage refused
}

// admitStorage asks the server's Storage whether org may store grow more bytes;
// a refusal becomes an SFTP failure carrying Storage's message.
func (s *Server) admitStorage(org string, grow int64) error {
	if s.cfg.Storage == nil {
		return nil
	}
	if err := s.cfg.Storage.Admit(org, grow); err != nil {
		return failure(err.Error())
	}
	return nil
}

// admitLocked asks Storage for room before the upload's written bytes
// grow to need, a AdmitChunk at a time. Called with mu held.
func (u *upload) admitLocked(need int64) error {
	if need <= u.admitted {
		return nil
	}
	grow := max(AdmitChunk, need-u.admitted)
	if err := u.fs.c.srv.admitStorage(u.fs.c.org, grow); err != nil {
		u.noSpace = true
		return err
	}
	u.admitted += grow
	return nil
}

func newUpload(f *orgFS, name string, flags sftp.FileOpenFlags) (*upload, error) {
	st, err := f.c.root.Lstat(name)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, f.translate("write", name, err)
	}
	if exists {
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			return nil, f.refuse("write", name, errNoLinks)
		case st.IsDir():
			return nil, errIsDirectory
		case !st.Mode().IsRegular():
			return nil, errNotRegular
		case linkCount(st) > 1:
			return nil, f.refuse("write", name, errHardLink)
		case flags.Excl:
			return nil, errExists
		}
	}
	u := &upload{
		fs: f, name: name, max: f.c.srv.currentLimits().MaxUploadSize, start: time.Now(),
		appends: flags.Append, hash: sha256.New(), pending: map[int64][]byte{},
	}
	if exists && !flags.Trunc {
		u.orig, _, err = f.openStored("write", name)
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.stageLocked(); err != nil {
		return nil, err
	}
	return u, nil
}

// stageLocked makes the staged file, seeded with the stored file's content
// and mode when the upload starts from it. Called with mu held.
func (u *upload) stageLocked() error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := TempPrefix + hex.EncodeToString(rnd[:])
	file, err := u.fs.c.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return u.fs.translate("write", u.name, err)
	}
	if u.orig != nil {
		err := func() error {
			st, err := u.orig.Stat()
			if err != nil {
				return err
			}
			if err := file.Chmod(st.Mode().Perm()); err != nil {
				return err
			}
			if err := u.admitLocked(st.Size()); err != nil {
				return err
			}
			n, err := io.Copy(io.MultiWriter(file, u.hash), io.NewSectionReader(u.orig, 0, st.Size()))
			u.size, u.hashed, u.base, u.written = n, n, n, n
			return err
		}()
		if err != nil {
			file.Close()
			u.fs.c.root.Remove(tmp)
			if u.noSpace {
				return err
			}
			return u.fs.translate("write", u.name, err)
		}
	}
	u.tmp, u.file = tmp, file
	return nil
}

func (u *upload) WriteAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	if u.failed != nil || u.closed {
		err := u.failed
		u.mu.Unlock()
		if err == nil {
			err = errUploadAborted
		}
		return 0, err
	}
	if u.file == nil {
		if err := u.stageLocked(); err != nil {
			u.failed = err
			u.mu.Unlock()
			return 0, err
		}
	}
	if u.appends {
		off += u.base
		u.appended += int64(len(p))
	}
	end := off + int64(len(p))
	if off < 0 || end > u.max {
		u.failed = failure(fmt.Sprintf("upload exceeds the size limit of %d bytes", u.max))
		u.mu.Unlock()
		return 0, u.failed
	}
	// Holes cost nothing: what an upload stores is what it writes.
	if err := u.admitLocked(u.written + int64(len(p))); err != nil {
		u.failed = err
		u.mu.Unlock()
		return 0, err
	}
	u.written += int64(len(p))
	file := u.file
	u.mu.Unlock()

	n, err := file.WriteAt(p, off)

	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		if u.failed == nil {
			u.failed = u.fs.translate("write", u.name, err)
		}
		return n, u.failed
	}
	u.size = max(u.size, end)
	u.hashWrite(p, off)
	return n, nil
}

// hashWrite feeds the in-order hash; out-of-order data is copied aside
// until the gap before it is filled. Called with mu held.
func (u *upload) hashWrite(p []byte, off int64) {
	if u.rehash {
		return
	}
	switch {
	case off == u.hashed:
		u.hash.Write(p)
		u.hashed += int64(len(p))
		for {
			q, ok := u.pending[u.hashed]
			if !ok {
				break
			}
			delete(u.pending, u.hashed)
			u.pendingN -= len(q)
			u.hash.Write(q)
			u.hashed += int64(len(q))
		}
	case off > u.hashed && u.pendingN+len(p) <= maxHashPending:
		if _, dup := u.pending[off]; dup {
			u.rehash = true
			return
		}
		u.pending[off] = append([]byte(nil), p...)
		u.pendingN += len(p)
	default: // a rewrite of hashed data, or too much out of order
		u.rehash = true
		u.pending, u.pendingN = nil, 0
	}
}

func (u *upload) ReadAt(p []byte, off int64) (int, error) { return u.current().ReadAt(p, off) }

// current is the file the handle reads and sets attributes on: the staged
// file, or the stored one while nothing changed.
func (u *upload) current() *os.File {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.file != nil {
		return u.file
	}
	return u.orig
}

// TransferError is called by pkg/sftp when the connection ended with the
// handle still open: the upload is then discarded by Close.
func (u *upload) TransferError(err error) {
	u.mu.Lock()
	if u.aborted == nil {
		u.aborted = err
	}
	u.mu.Unlock()
}

func (u *upload) stat() (os.FileInfo, error) { return u.current().Stat() }

// setstat applies a setstat to the handle's file (see orgFS.setstat). A
// size change stages the upload; mode and times go to the staged file, or
// to the stored one in place while nothing changed; no attributes at all
// (fsync@openssh.com) syncs it.
func (u *upload) setstat(flags sftp.FileAttrFlags, attrs *sftp.FileStat) error {
	if flags.Size {
		if err := u.truncate(int64(attrs.Size)); err != nil {
			return err
		}
	}
	file := u.current()
	if !flags.Size && !flags.Permissions && !flags.Acmodtime {
		if err := file.Sync(); err != nil {
			return u.fs.translate("fsync", u.name, err)
		}
		return nil
	}
	if err := setAttrs(file, flags, attrs); err != nil {
		return u.fs.translate("setstat", u.name, err)
	}
	return nil
}

func (u *upload) truncate(size int64) error {
	if size < 0 || size > u.max {
		return failure(fmt.Sprintf("upload exceeds the size limit of %d bytes", u.max))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.file == nil {
		if err := u.stageLocked(); err != nil {
			return err
		}
	}
	if err := u.file.Truncate(size); err != nil {
		return u.fs.translate("setstat", u.name, err)
	}
	u.size = size
	if size < u.hashed {
		u.rehash = true
	}
	if u.appends {
		// Later appends go to the new end.
		u.base = size - u.appended
	}
	return nil
}

// Close completes the upload: it renames the staged file onto its name and
// signals it, or discards it if the transfer failed. A handle that changed
// nothing signals nothing.
func (u *upload) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	failed, aborted, staged := u.failed, u.aborted, u.file != nil
	u.mu.Unlock()
	defer u.fs.dropUpload(u)
	defer u.fs.c.srv.endUpload()
	defer u.release()
	if u.orig != nil {
		defer u.orig.Close()
	}

	log, m := u.fs.c.log, u.fs.c.srv.metrics
	if !staged && failed == nil {
		log.Debug("write handle closed without changes", "file", u.name)
		return nil
	}
	if aborted != nil || failed != nil {
		if staged {
			u.discard()
		}
		result, reason := "aborted", fmt.Sprint(aborted)
		if failed != nil {
			result, reason = "failed", failed.Error()
			var st *status
			switch {
			case u.noSpace:
				result = "no_space"
			case errors.As(failed, &st) && st.code == sftp.ErrSSHFxFailure:
				result = "too_large"
			}
		}
		m.uploads.WithLabelValues(result).Inc()
		d := time.Since(u.start)
		log.Warn("upload discarded", "event", "upload.discarded", "file", u.name,
			"bytes", u.size, "reason", reason, "duration", d.String())
		u.fs.c.audit(AuditRecord{Event: EventUploadDiscarded, File: u.name, Bytes: u.size, Reason: reason, Duration: d})
		if failed != nil {
			return failed
		}
		return errUploadAborted
	}
	sum, err := u.sum()
	if err != nil {
		u.discard()
		m.uploads.WithLabelValues("failed").Inc()
		return u.fs.translate("close", u.name, err)
	}
	if err := u.file.Close(); err != nil {
		u.fs.c.root.Remove(u.tmp)
		m.uploads.WithLabelValues("failed").Inc()
		return u.fs.translate("close", u.name, err)
	}
	if err := u.fs.c.root.Rename(u.tmp, u.name); err != nil {
		u.fs.c.root.Remove(u.tmp)
		m.uploads.WithLabelValues("failed").Inc()
		return u.fs.translate("close", u.name, err)
	}
	m.uploads.WithLabelValues("ok").Inc()
	m.uploadBytes.Add(float64(u.size))
	d := time.Since(u.start)
	log.Info("upload complete", "event", "upload", "file", u.name, "bytes", u.size,
		"sha256", sum, "duration", d.String())
	u.fs.c.audit(AuditRecord{Event: EventUpload, File: u.name, Bytes: u.size, SHA256: sum, Duration: d})
	u.fs.c.srv.notify(u.fs.c.org, u.name)
	return nil
}

// sum returns the SHA-256 of the staged file: the in-order hash when it
// covers the whole file, else a fresh read of it.
func (u *upload) sum() (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.rehash || len(u.pending) > 0 || u.hashed != u.size {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(u.file, 0, u.size)); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	return hex.EncodeToString(u.hash.Sum(nil)), nil
}

func (u *upload) discard() {
	u.file.Close()
	u.fs.c.root.Remove(u.tmp)
}
