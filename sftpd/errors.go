package sftpd

import (
	"errors"
	"fmt"

	"github.com/pkg/sftp"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("sftpd: server closed")

// ErrKeyType is returned by ParseKeys for a key SPEC §3 does not accept
// (DSA, security-key types, RSA under 2048 bits, ...).
var ErrKeyType = errors.New("key type not accepted")

// status is an SFTP status sent to the client: a fixed code and a message
// that never names a server path. pkg/sftp sends Error() as the message and
// finds the code through Unwrap.
type status struct {
	msg  string
	code error // one of sftp.ErrSSHFx*
}

func (s *status) Error() string { return s.msg }
func (s *status) Unwrap() error { return s.code }

func denied(msg string) error  { return &status{msg: msg, code: sftp.ErrSSHFxPermissionDenied} }
func failure(msg string) error { return &status{msg: msg, code: sftp.ErrSSHFxFailure} }

var (
	errNoSuchFile    = &status{msg: "no such file", code: sftp.ErrSSHFxNoSuchFile}
	errReadOnly      = denied("reports/ is read-only")
	errNoLinks       = denied("links are not allowed")
	errNoDirs        = denied("creating or removing folders is not allowed")
	errNotRegular    = denied("not a regular file")
	errShuttingDown  = failure("server is shutting down, try again later")
	errTruncInPlace  = denied("changing the size of a stored file is not allowed; upload it again")
	errUnsupported   = &status{msg: "operation not supported", code: sftp.ErrSSHFxOpUnsupported}
	errExists        = failure("file exists")
	errGeneric       = failure("failure")
	errIsDirectory   = failure("is a folder")
	errUploadAborted = failure("upload aborted")
	errHardLink      = denied("file has more than one link; refused")

	errTooManyHandles = failure(fmt.Sprintf("too many open handles: at most %d per session; close some", maxOpenHandles))
)
