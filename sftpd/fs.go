package sftpd

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/pkg/sftp"
)

// TempPrefix starts the names of the hidden files uploads are staged in.
// Clients cannot see, open, rename or remove such names; watchers of the
// organization folders should ignore them.
const TempPrefix = ".rosterd-upload-"

// reportsDir is the read-only report folder of each organization.
const reportsDir = "reports"

// kind classifies a resolved request path.
type kind int

const (
	kindRoot    kind = iota // "/"
	kindFile                // a name in "/" other than reports
	kindReports             // "/reports"
	kindReport              // a name in "/reports/"
)

// resolve maps an SFTP path to a name relative to the organization root.
// SPEC §3: no path escapes the folder. The path is cleaned as if rooted at
// "/" (so "..", absolute paths and "//" all stay inside); only "/", names in
// "/", "/reports" and names in "/reports/" exist; the server's own temporary
// names do not exist for clients. os.Root enforces confinement again below.
func resolve(p string) (string, kind, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", 0, errNoSuchFile
	}
	p = path.Clean("/" + p)
	if p == "/" {
		return ".", kindRoot, nil
	}
	rel := p[1:]
	dir, base, nested := strings.Cut(rel, "/")
	switch {
	case !nested && dir == reportsDir:
		return reportsDir, kindReports, nil
	case !nested:
		if strings.HasPrefix(dir, TempPrefix) {
			return "", 0, errNoSuchFile
		}
		return dir, kindFile, nil
	case dir == reportsDir && !strings.Contains(base, "/"):
		return rel, kindReport, nil
	}
	return "", 0, errNoSuchFile
}

// orgFS implements pkg/sftp's handlers for one SFTP session, confined to
// the organization folder by the connection's os.Root.
type orgFS struct {
	c *conn

	mu      sync.Mutex
	open    map[string][]*upload // uploads of this session by target name
	opened  []*upload            // uploads not claimed by the framer yet, in open order (see direct.go)
	handles int                  // open handles: files and folders
}

func newOrgFS(c *conn) *orgFS { return &orgFS{c: c, open: map[string][]*upload{}} }

// closeAll discards uploads still open when the session ends (pkg/sftp
// normally closes them itself, after reporting the transfer error).
func (f *orgFS) closeAll() {
	f.mu.Lock()
	var ups []*upload
	for _, us := range f.open {
		ups = append(ups, us...)
	}
	f.mu.Unlock()
	for _, u := range ups {
		u.TransferError(io.ErrUnexpectedEOF)
		u.Close()
	}
}

func (f *orgFS) staged(name string) *upload {
	f.mu.Lock()
	defer f.mu.Unlock()
	if us := f.open[name]; len(us) > 0 {
		return us[len(us)-1]
	}
	return nil
}

func (f *orgFS) addUpload(u *upload) {
	f.mu.Lock()
	f.open[u.name] = append(f.open[u.name], u)
	f.opened = append(f.opened, u)
	f.mu.Unlock()
}

// claimUpload takes the oldest upload the framer has not claimed (see
// uploadClaimer) and returns it if it was opened for path with pflags.
// An upload closed meanwhile is still returned: its WriteAt refuses.
func (f *orgFS) claimUpload(path string, pflags uint32) io.WriterAt {
	f.mu.Lock()
	if len(f.opened) == 0 {
		f.mu.Unlock()
		return nil
	}
	u := f.opened[0]
	f.opened = slices.Delete(f.opened, 0, 1)
	f.mu.Unlock()
	name, _, err := resolve(path)
	if err != nil || name != u.name || u.appends != (pflags&fxfAppend != 0) {
		return nil
	}
	return u
}

func (f *orgFS) dropUpload(u *upload) {
	f.mu.Lock()
	defer f.mu.Unlock()
	us := slices.DeleteFunc(f.open[u.name], func(x *upload) bool { return x == u })
	if len(us) == 0 {
		delete(f.open, u.name)
	} else {
		f.open[u.name] = us
	}
}

// acquireHandle counts a new handle of the session against
// maxOpenHandles (the number announced in limits@openssh.com; SPEC §3).
// The returned release gives it back; calling it again does nothing.
func (f *orgFS) acquireHandle(file string) (release func(), err error) {
	f.mu.Lock()
	full := f.handles >= maxOpenHandles
	if !full {
		f.handles++
	}
	f.mu.Unlock()
	if full {
		return nil, f.refuse("handle_limit", file, errTooManyHandles)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.handles--
			f.mu.Unlock()
		})
	}, nil
}

func (f *orgFS) refuse(op, file string, err error) error {
	f.c.refuse(op, "file", file, "err", err.Error())
	return err
}

// checkReports refuses a reports/ folder that is not a real folder (a
// symlink planted there is never followed).
func (f *orgFS) checkReports() error {
	st, err := f.c.root.Lstat(reportsDir)
	if err != nil || !st.IsDir() {
		return errNoSuchFile
	}
	return nil
}

// Fileread opens a file for reading. Symlinks are not followed.
func (f *orgFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	name, k, err := resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch k {
	case kindRoot, kindReports:
		return nil, errIsDirectory
	case kindReport:
		if err := f.checkReports(); err != nil {
			return nil, err
		}
	}
	file, _, err := f.openStored("read", name)
	if err != nil {
		return nil, err
	}
	release, err := f.acquireHandle(name)
	if err != nil {
		file.Close()
		return nil, err
	}
	return readHandle{file, release}, nil
}

// readHandle is a file open for reading that holds one of the session's
// handles until pkg/sftp closes it.
type readHandle struct {
	*os.File
	release func()
}

func (h readHandle) Close() error {
	defer h.release()
	return h.File.Close()
}

// openStored opens a stored file for reading: never through a symlink,
// only a regular file, and never one with more than one link. SPEC §3: a
// hard link planted in a folder (to a file outside it, such as the data
// directory's api_token) is never read, written or chmod-ed. The checks
// are made on the opened file, so the name cannot be swapped in between.
func (f *orgFS) openStored(op, name string) (*os.File, os.FileInfo, error) {
	file, err := openNoFollow(f.c.root, name)
	if err != nil {
		return nil, nil, f.translate(op, name, err)
	}
	st, err := file.Stat()
	switch {
	case err != nil || !st.Mode().IsRegular():
		file.Close()
		return nil, nil, errNotRegular
	case linkCount(st) > 1:
		file.Close()
		return nil, nil, f.refuse(op, name, errHardLink)
	}
	return file, st, nil
}

// linkCount is the number of hard links of the file st describes.
func linkCount(st os.FileInfo) uint64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Nlink)
	}
	return 1
}

// Filewrite opens an upload (see upload).
func (f *orgFS) Filewrite(r *sftp.Request) (io.WriterAt, error) { return f.openUpload(r) }

// OpenFile opens an upload that can also be read through its handle.
func (f *orgFS) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) { return f.openUpload(r) }

func (f *orgFS) openUpload(r *sftp.Request) (*upload, error) {
	name, k, err := resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch k {
	case kindRoot:
		return nil, errIsDirectory
	case kindReports, kindReport:
		return nil, f.refuse("write", name, errReadOnly)
	}
	release, err := f.acquireHandle(name)
	if err != nil {
		return nil, err
	}
	if !f.c.srv.beginUpload() {
		release()
		return nil, errShuttingDown
	}
	// SPEC §3: no upload starts while the disk is low or the
	// organization is at its quota.
	if err := f.c.srv.admitStorage(f.c.org, 0); err != nil {
		f.c.srv.endUpload()
		release()
		return nil, f.refuse("write", name, err)
	}
	u, err := newUpload(f, name, r.Pflags())
	if err != nil {
		f.c.srv.endUpload()
		release()
		return nil, err
	}
	u.release = release
	f.addUpload(u)
	return u, nil
}

// Filecmd handles setstat, rename, remove and the refused mkdir, rmdir,
// link and symlink.
func (f *orgFS) Filecmd(r *sftp.Request) error {
	switch r.Method {
	case "Setstat":
		return f.setstat(r)
	case "Rename", "PosixRename":
		return f.rename(r)
	case "Remove":
		return f.remove(r)
	case "Mkdir", "Rmdir":
		return f.refuse(strings.ToLower(r.Method), r.Filepath, errNoDirs)
	case "Link", "Symlink":
		return f.refuse(strings.ToLower(r.Method), r.Target, errNoLinks)
	}
	return errUnsupported
}

// PosixRename is rename: both overwrite (SPEC §3).
func (f *orgFS) PosixRename(r *sftp.Request) error { return f.rename(r) }

// setstat accepts mode and times and ignores ownership (SPEC §3). The mode
// is kept readable and writable by the daemon and never executable or
// special: (mode & 0644) | 0600. On a name this session is uploading, the
// attributes apply to that upload (see upload.setstat) and so survive the
// rename into place. A size change is allowed only on an upload:
// truncating a stored file in place would bypass staging. Attributes are
// set through the opened file, never by name, and never on a file with
// more than one link. A setstat never signals a completion (SPEC §3: mode
// and time changes never start a batch).
func (f *orgFS) setstat(r *sftp.Request) error {
	name, k, err := resolve(r.Filepath)
	if err != nil {
		return err
	}
	switch k {
	case kindRoot:
		return nil
	case kindReports, kindReport:
		return f.refuse("setstat", name, errReadOnly)
	}
	flags, attrs := r.AttrFlags(), r.Attributes()
	if u := f.staged(name); u != nil {
		return u.setstat(flags, attrs)
	}
	if !flags.Size && !flags.Permissions && !flags.Acmodtime {
		return nil
	}
	file, st, err := f.openStored("setstat", name)
	if err != nil {
		return err
	}
	defer file.Close()
	if flags.Size && int64(attrs.Size) != st.Size() {
		return f.refuse("setstat", name, errTruncInPlace)
	}
	if err := setAttrs(file, flags, attrs); err != nil {
		return f.translate("setstat", name, err)
	}
	return nil
}

// setAttrs sets the mode and times a setstat carries on an open file.
func setAttrs(file *os.File, flags sftp.FileAttrFlags, attrs *sftp.FileStat) error {
	if flags.Permissions {
		if err := file.Chmod(fs.FileMode(attrs.Mode)&0o644 | 0o600); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		tv := []syscall.Timeval{{Sec: int64(attrs.Atime)}, {Sec: int64(attrs.Mtime)}}
		if err := syscall.Futimes(int(file.Fd()), tv); err != nil {
			return err
		}
	}
	return nil
}

// rename moves a file in "/" onto another name in "/", overwriting it, and
// signals the target as completed. Folders, symlinks, reports/ and the
// server's temporary names cannot be renamed.
func (f *orgFS) rename(r *sftp.Request) error {
	from, fk, err := resolve(r.Filepath)
	if err != nil {
		return err
	}
	to, tk, err := resolve(r.Target)
	if err != nil {
		if errors.Is(err, errNoSuchFile) {
			return f.refuse("rename", r.Target, denied("cannot rename there"))
		}
		return err
	}
	if fk == kindReports || fk == kindReport || tk == kindReports || tk == kindReport {
		return f.refuse("rename", from, errReadOnly)
	}
	if fk != kindFile || tk != kindFile {
		return f.refuse("rename", from, errNoDirs)
	}
	st, err := f.c.root.Lstat(from)
	if err != nil {
		return f.translate("rename", from, err)
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return f.refuse("rename", from, errNoLinks)
	}
	if !st.Mode().IsRegular() {
		return f.refuse("rename", from, errNotRegular)
	}
	if linkCount(st) > 1 {
		return f.refuse("rename", from, errHardLink)
	}
	if dst, err := f.c.root.Lstat(to); err == nil {
		switch {
		case dst.IsDir():
			return f.refuse("rename", to, errIsDirectory)
		case linkCount(dst) > 1:
			return f.refuse("rename", to, errHardLink)
		}
	}
	if err := f.c.root.Rename(from, to); err != nil {
		return f.translate("rename", from, err)
	}
	f.c.log.Info("file renamed", "event", "rename", "file", to, "from", from, "bytes", st.Size())
	f.c.audit(AuditRecord{Event: EventRename, File: from, Target: to, Bytes: st.Size()})
	f.c.srv.notify(f.c.org, to)
	return nil
}

func (f *orgFS) remove(r *sftp.Request) error {
	name, k, err := resolve(r.Filepath)
	if err != nil {
		return err
	}
	switch k {
	case kindReports, kindReport:
		return f.refuse("remove", name, errReadOnly)
	case kindRoot:
		return f.refuse("remove", name, errNoDirs)
	}
	st, err := f.c.root.Lstat(name)
	if err != nil {
		return f.translate("remove", name, err)
	}
	if st.IsDir() {
		return f.refuse("remove", name, errNoDirs)
	}
	if err := f.c.root.Remove(name); err != nil {
		return f.translate("remove", name, err)
	}
	f.c.log.Info("file removed", "event", "remove", "file", name, "bytes", st.Size())
	f.c.audit(AuditRecord{Event: EventRemove, File: name, Bytes: st.Size()})
	return nil
}

// StatVFS reports the file system of the organization folder (`df`).
func (f *orgFS) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	d, err := f.c.root.Open(".")
	if err != nil {
		return nil, errGeneric
	}
	defer d.Close()
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(d.Fd()), &st); err != nil {
		return nil, errGeneric
	}
	return &sftp.StatVFS{
		Bsize: uint64(st.Bsize), Frsize: uint64(st.Frsize), Blocks: st.Blocks,
		Bfree: st.Bfree, Bavail: st.Bavail, Files: st.Files, Ffree: st.Ffree,
		Favail: st.Ffree, Fsid: uint64(uint32(st.Fsid.X__val[0]))<<32 | uint64(uint32(st.Fsid.X__val[1])),
		Flag: uint64(st.Flags), Namemax: uint64(st.Namelen),
	}, nil
}

// Filelist lists folders and stats names. Listings hide the server's
// temporary files; stat never follows a symlink.
func (f *orgFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	name, k, err := resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		switch k {
		case kindFile, kindReport:
			return nil, failure("not a folder")
		case kindReports:
			if err := f.checkReports(); err != nil {
				return nil, err
			}
		}
		infos, err := f.list(name)
		if err != nil {
			return nil, err
		}
		release, err := f.acquireHandle(name)
		if err != nil {
			return nil, err
		}
		return dirHandle{infos, release}, nil
	case "Stat", "Lstat":
		return f.stat(name, k)
	case "Readlink":
		return nil, errNoLinks
	}
	return nil, errUnsupported
}

// Lstat is Stat: no symlink is ever followed.
func (f *orgFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) { return f.Filelist(r) }

// RealPath returns the cleaned absolute path; nothing is resolved on disk.
func (f *orgFS) RealPath(p string) (string, error) { return path.Clean("/" + p), nil }

// LookupUserName and LookupGroupName name the owner in `ls -l` listings
// after the organization, whatever the server-side owner is.
func (f *orgFS) LookupUserName(string) string { return f.c.org }

// LookupGroupName: see LookupUserName.
func (f *orgFS) LookupGroupName(string) string { return f.c.org }

func (f *orgFS) stat(name string, k kind) (sftp.ListerAt, error) {
	if k == kindReport {
		if err := f.checkReports(); err != nil {
			return nil, err
		}
	}
	if u := f.staged(name); u != nil {
		if st, err := u.stat(); err == nil {
			return listerAt{renamed{st, path.Base(name)}}, nil
		}
	}
	st, err := f.c.root.Lstat(name)
	if err != nil {
		return nil, f.translate("stat", name, err)
	}
	if k == kindRoot {
		st = renamed{st, "/"}
	}
	return listerAt{st}, nil
}

// dirHandle is a folder listing that holds one of the session's handles
// until pkg/sftp closes it.
type dirHandle struct {
	listerAt
	release func()
}

func (d dirHandle) Close() error {
	d.release()
	return nil
}

func (f *orgFS) list(name string) (listerAt, error) {
	d, err := f.c.root.Open(name)
	if err != nil {
		return nil, f.translate("list", name, err)
	}
	defer d.Close()
	infos, err := d.Readdir(-1)
	if err != nil {
		return nil, errGeneric
	}
	infos = slices.DeleteFunc(infos, func(fi os.FileInfo) bool { return strings.HasPrefix(fi.Name(), TempPrefix) })
	slices.SortFunc(infos, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return listerAt(infos), nil
}

// translate maps a file system error to an SFTP status without a path.
func (f *orgFS) translate(op, name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errNoSuchFile
	case errors.Is(err, syscall.ELOOP):
		return f.refuse(op, name, errNoLinks)
	case errors.Is(err, fs.ErrPermission):
		return denied("permission denied")
	case errors.Is(err, syscall.EISDIR):
		return errIsDirectory
	case errors.Is(err, syscall.ENOTDIR):
		return errNoSuchFile
	}
	f.c.log.Error("file operation failed", "op", op, "file", name, "err", err)
	return errGeneric
}

// openNoFollow opens name for reading unless it is a symlink. os.Root
// follows symlinks that stay inside the root (and ignores O_NOFOLLOW), so
// the name is checked with Lstat and the opened file compared with it.
// SPEC §3: the daemon never follows a symlink found in a folder.
func openNoFollow(root *os.Root, name string) (*os.File, error) {
	before, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		return nil, syscall.ELOOP
	}
	file, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	after, err := file.Stat()
	if err != nil || !os.SameFile(before, after) {
		file.Close()
		return nil, syscall.ELOOP
	}
	return file, nil
}

// listerAt serves a fixed list of entries.
type listerAt []os.FileInfo

func (l listerAt) ListAt(ls []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(ls, l[offset:])
	if n < len(ls) {
		return n, io.EOF
	}
	return n, nil
}

// renamed overrides a FileInfo's name.
type renamed struct {
	os.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }
