package sftpd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// errFolderLink refuses an organization folder that is not a real folder.
var errFolderLink = errors.New("the organization folder is a symbolic link or not a folder")

// openOrgRoot creates the organization folder and its reports/ subfolder
// when missing and opens the folder as an os.Root, which confines every
// file operation of the connection to it. SPEC §3: an organization folder
// that is itself a symlink is never served (os.OpenRoot would follow it);
// the folder opened is checked to be the one found by Lstat.
func (s *Server) openOrgRoot(org string) (*os.Root, error) {
	dir := filepath.Join(s.cfg.Root, org)
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, errFolderLink
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if opened, err := root.Stat("."); err != nil || !os.SameFile(st, opened) {
		root.Close()
		return nil, errFolderLink
	}
	if err := root.Mkdir(reportsDir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		root.Close()
		return nil, err
	}
	return root, nil
}

// refuseFolder answers every session of a connection whose organization
// folder cannot be served, and logs why.
func (c *conn) refuseFolder(chans <-chan ssh.NewChannel, err error) {
	msg := "this organization's folder cannot be served; the operator has been told"
	if errors.Is(err, errFolderLink) {
		c.refuse("folder_link", "err", err.Error())
	} else {
		c.log.Error("open organization folder", "err", err)
	}
	for nch := range chans {
		nch.Reject(ssh.Prohibited, msg)
	}
}

// removeStaleUploads removes the staging files (TempPrefix) that a daemon
// that crashed or was killed left in the organization folders (each up to
// the upload limit, invisible to the organization). New calls it, before
// any session could be staging an upload. Only the top level of real
// organization folders is looked at: uploads are staged nowhere else.
func (s *Server) removeStaleUploads() {
	orgs, err := os.ReadDir(s.cfg.Root)
	if err != nil {
		s.log.Warn("look for stale uploads", "err", err)
		return
	}
	for _, o := range orgs {
		if !o.IsDir() { // ReadDir does not follow symlinks
			continue
		}
		dir := filepath.Join(s.cfg.Root, o.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			s.log.Warn("look for stale uploads", "org", o.Name(), "err", err)
			continue
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), TempPrefix) || !e.Type().IsRegular() {
				continue
			}
			var size int64
			if fi, err := e.Info(); err == nil {
				size = fi.Size()
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				s.log.Warn("remove stale upload", "org", o.Name(), "file", e.Name(), "err", err)
				continue
			}
			s.log.Info("stale upload removed", "event", "upload.discarded", "org", o.Name(),
				"file", e.Name(), "bytes", size, "reason", "left by an earlier run of the daemon")
		}
	}
}
