// Command gosftp is the Go pkg/sftp client of rosterd's interop suite
// (cmd/rosterd/interop_test.go): it logs in with a key, checks the host key
// against a known_hosts file, and performs the steps given on its command
// line, as an export job written in Go would. Uploads use File.ReadFrom with
// concurrent writes; append opens with O_APPEND; posixrename uses
// posix-rename@openssh.com; mtime uses Chtimes.
//
// Connection (environment): EXPORT_HOST, EXPORT_PORT, EXPORT_USER,
// EXPORT_KEY (private key file), EXPORT_KNOWN_HOSTS.
//
// Steps (one argument each, fields separated by spaces; "!STEP" means the
// step must fail): ls DIR, put LOCAL REMOTE, rename FROM TO, posixrename
// FROM TO, chmod OCTAL REMOTE, mtime UNIX REMOTE, append LOCAL REMOTE
// (the bytes of LOCAL past the remote size, through an O_APPEND handle),
// resume LOCAL REMOTE (the same bytes written at the remote size), get
// REMOTE LOCAL. Each step prints "ok STEP" ("ls DIR: NAMES" first for ls),
// a failing "!" step "refused STEP: ERR"; any other failure prints "error
// STEP: ERR" and exits 1.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func main() {
	c, err := connect()
	if err != nil {
		fmt.Println("error connect:", err)
		os.Exit(1)
	}
	defer c.Close()
	for _, step := range os.Args[1:] {
		mustFail := strings.HasPrefix(step, "!")
		err := run(c, strings.Fields(strings.TrimPrefix(step, "!")))
		switch {
		case mustFail && err != nil:
			fmt.Printf("refused %s: %v\n", step[1:], err)
		case mustFail:
			fmt.Printf("error %s: succeeded; want a refusal\n", step[1:])
			os.Exit(1)
		case err != nil:
			fmt.Printf("error %s: %v\n", step, err)
			os.Exit(1)
		default:
			fmt.Println("ok", step)
		}
	}
}

func connect() (*sftp.Client, error) {
	pem, err := os.ReadFile(os.Getenv("EXPORT_KEY"))
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, err
	}
	hostKeys, err := knownhosts.New(os.Getenv("EXPORT_KNOWN_HOSTS"))
	if err != nil {
		return nil, err
	}
	conn, err := ssh.Dial("tcp", net.JoinHostPort(os.Getenv("EXPORT_HOST"), os.Getenv("EXPORT_PORT")), &ssh.ClientConfig{
		User:            os.Getenv("EXPORT_USER"),
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return sftp.NewClient(conn, sftp.UseConcurrentWrites(true))
}

func run(c *sftp.Client, f []string) error {
	if len(f) < 2 {
		return fmt.Errorf("bad step %q", f)
	}
	switch {
	case f[0] == "ls":
		infos, err := c.ReadDir(f[1])
		if err != nil {
			return err
		}
		var names []string
		for _, fi := range infos {
			names = append(names, fi.Name())
		}
		sort.Strings(names)
		fmt.Printf("ls %s: %s\n", f[1], strings.Join(names, " "))
		return nil
	case len(f) != 3:
		return fmt.Errorf("bad step %q", f)
	case f[0] == "put":
		return upload(c, f[1], f[2], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0)
	case f[0] == "append", f[0] == "resume":
		st, err := c.Stat(f[2])
		if err != nil {
			return err
		}
		if f[0] == "append" {
			return upload(c, f[1], f[2], os.O_WRONLY|os.O_APPEND, st.Size())
		}
		return upload(c, f[1], f[2], os.O_WRONLY, st.Size())
	case f[0] == "rename":
		return c.Rename(f[1], f[2])
	case f[0] == "posixrename":
		return c.PosixRename(f[1], f[2])
	case f[0] == "chmod":
		mode, err := strconv.ParseUint(f[1], 8, 32)
		if err != nil {
			return err
		}
		return c.Chmod(f[2], os.FileMode(mode))
	case f[0] == "mtime":
		sec, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return err
		}
		t := time.Unix(sec, 0)
		return c.Chtimes(f[2], t, t)
	case f[0] == "get":
		r, err := c.Open(f[1])
		if err != nil {
			return err
		}
		defer r.Close()
		var b bytes.Buffer
		if _, err := r.WriteTo(&b); err != nil {
			return err
		}
		return os.WriteFile(f[2], b.Bytes(), 0o600)
	}
	return fmt.Errorf("unknown step %q", f[0])
}

// upload sends the bytes of local from offset from on through a remote
// handle opened with flags; with O_APPEND the server places them, else
// they are written from offset from (0 for a new upload).
func upload(c *sftp.Client, local, remote string, flags int, from int64) error {
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := src.Seek(from, io.SeekStart); err != nil {
		return err
	}
	dst, err := c.OpenFile(remote, flags)
	if err != nil {
		return err
	}
	if flags&os.O_APPEND == 0 {
		if _, err := dst.Seek(from, io.SeekStart); err != nil {
			dst.Close()
			return err
		}
	}
	// ReadFrom writes concurrently (UseConcurrentWrites) when it knows
	// the size, as an *os.File tells it.
	if _, err := dst.ReadFrom(src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
