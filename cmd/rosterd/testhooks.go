package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/state"
)

// Test hooks: environment variables that only rosterd's own end-to-end
// tests set, to drive the real binary through faults that are hard to
// cause on demand. They are not configuration, are not documented for
// operators, and change nothing when unset.
//
//   - ROSTERD_TEST_WRITE_FAULT=PATH: while PATH exists, the state's apply
//     writes (state.Options.Fault at "apply", "change", "stage" and
//     "flip") fail with ENOSPC, as on a full disk.
//   - ROSTERD_TEST_RETRY=MIN[,MAX]: the backoff of batches that failed
//     (ingest.Config.RetryMin and RetryMax).

// testStateOptions returns the state options the test hooks ask for (nil
// when none).
func testStateOptions(getenv func(string) string) *state.Options {
	path := getenv("ROSTERD_TEST_WRITE_FAULT")
	if path == "" {
		return nil
	}
	return &state.Options{Fault: func(point string) error {
		switch point {
		case "apply", "change", "stage", "flip":
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("injected write fault (%s): %w", point, syscall.ENOSPC)
			}
		}
		return nil
	}}
}

// applyTestHooks sets what the test hooks ask for on the ingest config.
func applyTestHooks(getenv func(string) string, ic *ingest.Config) error {
	v := getenv("ROSTERD_TEST_RETRY")
	if v == "" {
		return nil
	}
	lo, hi, _ := strings.Cut(v, ",")
	if hi == "" {
		hi = lo
	}
	var err error
	if ic.RetryMin, err = time.ParseDuration(lo); err == nil {
		ic.RetryMax, err = time.ParseDuration(hi)
	}
	if err != nil {
		return fmt.Errorf("ROSTERD_TEST_RETRY: %w", err)
	}
	return nil
}
