package sftpd

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Messages for refused session requests (SPEC §3: refused with a clear
// message; legacy scp gets "use SFTP").
const (
	msgUseSFTP   = "rosterd: legacy scp (scp -O) is not supported; use SFTP (plain scp in OpenSSH 9+, or sftp)\r\n"
	msgSFTPOnly  = "rosterd: this server only offers SFTP; shell and command execution are refused\r\n"
	sftpSubsys   = "sftp"
	exitFailure  = 1
	exitSuccess  = 0
	reqExitState = "exit-status"
)

// conn is one authenticated SSH connection of an organization.
type conn struct {
	srv     *Server
	root    *os.Root
	org     string
	session string
	remote  string // client address, for the audit trail
	keyFP   string // fingerprint of the key the connection logged in with
	log     *slog.Logger
	limits  Limits
}

// serveSession serves one session channel: the sftp subsystem, or a refusal.
func (c *conn) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	c.srv.metrics.sessions.Inc()
	c.srv.metrics.sessionsTotal.Inc()
	defer c.srv.metrics.sessions.Dec()
	var once sync.Once
	done := make(chan struct{})
	finished := done // nil once seen, so the select stops picking it
	started := false
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				if started {
					<-done
				} else {
					ch.Close()
				}
				return
			}
			switch req.Type {
			case "subsystem":
				var p struct{ Name string }
				if ssh.Unmarshal(req.Payload, &p) != nil || p.Name != sftpSubsys || started {
					c.refuse("subsystem", "subsystem", p.Name)
					req.Reply(false, nil)
					continue
				}
				started = true
				req.Reply(true, nil)
				go func() {
					defer close(done)
					c.serveSFTP(ch)
					once.Do(func() { exit(ch, exitSuccess) })
				}()
			case "exec", "shell":
				var p struct{ Command string }
				ssh.Unmarshal(req.Payload, &p)
				msg := msgSFTPOnly
				if strings.HasPrefix(strings.TrimSpace(p.Command), "scp") {
					msg = msgUseSFTP
				}
				c.refuse(req.Type, "command", truncate(p.Command, 80))
				req.Reply(!started, nil)
				if !started {
					started = true
					close(done)
					io.WriteString(ch.Stderr(), msg)
					once.Do(func() { exit(ch, exitFailure) })
				}
			case "env", "pty-req", "window-change", "keepalive@openssh.com", "signal":
				req.Reply(false, nil)
			default:
				c.refuse("request", "request", truncate(req.Type, 40))
				req.Reply(false, nil)
			}
		case <-finished:
			// The sftp server ended (or a refusal was sent): keep
			// draining requests until the channel is gone.
			finished = nil
		}
	}
}

// exit sends exit-status and closes the channel. scp exits 1 after a
// complete upload if exit-status is missing.
func exit(ch ssh.Channel, code uint32) {
	ch.SendRequest(reqExitState, false, ssh.Marshal(struct{ Code uint32 }{code}))
	ch.CloseWrite()
	ch.Close()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxData is the largest read and write payload announced in
// limits@openssh.com: OpenSSH's own value, 256 KiB minus 1 KiB for headers,
// inside pkg/sftp's 256 KiB packet limit.
const maxData = 256<<10 - 1024

func (c *conn) serveSFTP(ch ssh.Channel) {
	fsys := newOrgFS(c)
	defer fsys.closeAll()
	h := sftp.Handlers{FileGet: fsys, FilePut: fsys, FileCmd: fsys, FileList: fsys}
	fr := newFramer(ch, c.srv.hold, c.srv.release)
	fr.uploads = fsys
	defer fr.releaseAll()
	rs := sftp.NewRequestServer(fr, h, sftp.WithRSAllocator(), sftp.WithRSMaxTxPacket(maxData))
	if err := rs.Serve(); err != nil && err != io.EOF {
		c.log.Debug("sftp session ended", "err", fmt.Sprint(err))
	}
}
