// Command rosterd is the SFTP directory-sync daemon and its command-line
// client. See ../../README.md and SPEC §2 for the commands.
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

const usage = `usage: rosterd COMMAND [flags]

  serve [--demo]                      run the daemon (SFTP + HTTP + ingest + delivery)
  validate [--json] [--kind K] FILE...  check CSV files offline
  plan --org ORG FILE...              dry run against the running daemon's snapshot
  org add ORG [--key FILE|-] | org list | org remove ORG
  org invite ORG [--expires 7d] [--create]   a setup link for the organization's admin
  key add ORG FILE|- | key list ORG | key remove ORG FINGERPRINT
  batch list ORG | batch show ORG BATCH | batch approve ORG BATCH
  version

Every command takes --data DIR (default ./rosterd-data, or $ROSTERD_DATA).
Run "rosterd COMMAND -h" for a command's flags.
`

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

// usageError returns an error for a command-line mistake.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// run is the whole program: main only maps its error to an exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "validate":
		return runValidate(ctx, rest, stdout, stderr)
	case "plan":
		return runPlan(ctx, rest, stdout, stderr)
	case "org":
		return runOrg(ctx, rest, stdin, stdout, stderr)
	case "key":
		return runKey(ctx, rest, stdin, stdout, stderr)
	case "batch":
		return runBatch(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "rosterd %s\n", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError("unknown command %q", cmd)
	}
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
