package sftpd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

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
//
// With a SharedRoot, another instance may be staging an upload in the
// same folder right now: only the files not written for longer than the
// idle timeout go (a live upload writes its file, or its connection
// closes after the idle timeout and discards it). The younger ones stay;
// an instance that starts later removes those that are stale by then.
func (s *Server) removeStaleUploads() {
	orgs, err := os.ReadDir(s.cfg.Root)
	if err != nil {
		s.log.Warn("look for stale uploads", "err", err)
		return
	}
	var cutoff time.Time
	if s.cfg.SharedRoot {
		cutoff = s.now().Add(-s.limits.Load().IdleTimeout)
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
			fi, err := e.Info()
			if err != nil {
				continue // gone meanwhile: another instance's upload ended
			}
			if !cutoff.IsZero() && fi.ModTime().After(cutoff) {
				s.log.Info("staging file kept", "org", o.Name(), "file", e.Name(), "bytes", fi.Size(),
					"reason", "written within the idle timeout: another instance may be uploading it")
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					s.log.Warn("remove stale upload", "org", o.Name(), "file", e.Name(), "err", err)
				}
				continue
			}
			reason := "left by an earlier run of the daemon"
			if s.cfg.SharedRoot {
				reason = "not written for longer than the idle timeout: left by an instance that stopped"
			}
			s.log.Info("stale upload removed", "event", "upload.discarded", "org", o.Name(),
				"file", e.Name(), "bytes", fi.Size(), "reason", reason)
		}
	}
}
