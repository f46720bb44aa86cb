// Command rosterd is the SFTP directory-sync daemon and its command-line
// client. See ../../README.md and SPEC §2 for the commands; commands.go
// holds the tree of commands and their help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

// usageErr is a command-line mistake found by a command's action; the
// dispatcher prints it with the command's usage line.
type usageErr struct{ msg string }

func (e *usageErr) Error() string        { return e.msg }
func (e *usageErr) Is(target error) bool { return target == errUsage }

// usageError returns an error for a command-line mistake.
func usageError(format string, args ...any) error {
	return &usageErr{msg: fmt.Sprintf(format, args...)}
}

// exitCode maps run's error to the exit codes of SPEC §2: 0 success, 1
// failure (or an invalid file for validate), 2 usage, I/O, or no daemon.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ec *ExitCodeError
	if errors.As(err, &ec) {
		if ec.Err != nil {
			fmt.Fprintf(stderr, "rosterd: %v\n", ec.Err)
		}
		return ec.Code
	}
	fmt.Fprintf(stderr, "rosterd: %v\n", err)
	if errors.Is(err, errUsage) || errors.Is(err, errNoDaemon) {
		return 2
	}
	return 1
}
