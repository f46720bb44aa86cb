package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher turns file system events in the organization folders into
// notifications, for files placed by other means than rosterd's SFTP
// server (SPEC §3): a file created, written or renamed onto a name that is
// one of the organization's kinds. New organization folders under the
// root are watched as they appear. One goroutine (run) owns it.
type watcher struct {
	p  *Pipeline
	fs *fsnotify.Watcher
}

func newWatcher(p *Pipeline) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fw.Add(p.cfg.OrgsRoot); err != nil {
		fw.Close()
		return nil, err
	}
	return &watcher{p: p, fs: fw}, nil
}

func (w *watcher) close() { w.fs.Close() }

// addOrg watches org's folder (not its reports).
func (w *watcher) addOrg(org string) {
	if err := w.fs.Add(filepath.Join(w.p.cfg.OrgsRoot, org)); err != nil {
		w.p.log.Debug("watch organization folder", "org", org, "err", err)
	}
}

func (w *watcher) run(ctx context.Context) {
	root := filepath.Clean(w.p.cfg.OrgsRoot)
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.p.log.Warn("file watcher", "err", err)
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			dir, name := filepath.Split(ev.Name)
			dir = filepath.Clean(dir)
			if strings.HasPrefix(name, ".") {
				continue
			}
			switch {
			case dir == root && ev.Has(fsnotify.Create):
				// A new organization folder: watch it, then take what is
				// already in it (it may have filled before the watch).
				w.addOrg(name)
				w.p.scan(name)
			case filepath.Dir(dir) == root && (ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write)):
				org := filepath.Base(dir)
				s, err := w.p.settingsFor(org)
				if err != nil {
					continue
				}
				if _, ok := s.kindOf(name); ok {
					w.p.note(org, name, false)
				}
			}
		}
	}
}

// changeTime is fi's change time (ctime): every write, rename, chmod and
// time change moves it, and no client can set it, unlike the modification
// time (pscp -p, put -p and rclone set an old one on what they upload).
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}

// linkCount is the number of hard links of the file fi describes.
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

var (
	errHardLink   = errors.New("refused: the file has more than one hard link")
	errFolderLink = errors.New("refused: the organization folder is a symbolic link")
)

// orgDir returns org's folder, refusing one that is not a real folder
// (SPEC §3: an organization folder that is a symlink is never ingested).
func (p *Pipeline) orgDir(org string) (string, error) {
	dir := filepath.Join(p.cfg.OrgsRoot, org)
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", errFolderLink
	}
	return dir, nil
}
