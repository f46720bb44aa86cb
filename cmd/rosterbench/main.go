// Command rosterbench runs side-by-side benchmarks of rosterd's parts
// against a reference measured in the same run, and prints medians and
// per-round ratios.
//
//	rosterbench sftp [flags]     rosterd's sftpd against OpenSSH's sshd (internal-sftp)
//	rosterbench csv [flags]      the CSV reader and validators
//	rosterbench webhook [flags]  webhook delivery against a verifying receiver
//	rosterbench ingest [flags]   first upload, day-2 export, identical re-upload against a bare CSV read
//	rosterbench exports [flags]  a day-2 export plain, mapped and gzipped, and OpenPGP-encrypted, through the pipeline
//
// Each mode lives in its own file as func runX(args []string, stdout
// io.Writer) error and gets one case in run's switch.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rosterbench:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: rosterbench MODE [flags]; modes: sftp, csv, webhook, ingest, exports")

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "sftp":
		return runSFTP(args[1:], stdout)
	case "sftp-go-client": // the Go client the sftp mode runs in a process of its own
		return runSFTPGoClient(args[1:], stdout)
	case "csv":
		return runCSV(args[1:], stdout)
	case "webhook":
		return runWebhook(args[1:], stdout)
	case "ingest":
		return runIngest(args[1:], stdout)
	case "exports":
		return runExports(args[1:], stdout)
	}
	return fmt.Errorf("unknown mode %q: %w", args[0], errUsage)
}
