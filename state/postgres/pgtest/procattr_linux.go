package pgtest

import "syscall"

// procAttr runs a child as cred (nil: as this process) and kills it when
// this process dies.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
