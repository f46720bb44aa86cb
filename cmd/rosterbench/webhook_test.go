package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestRunWebhook runs a small webhook benchmark: every event arrives,
// verified and in order. ROSTERBENCH_WEBHOOK_FULL=1 runs the full size
// and prints the figures.
func TestRunWebhook(t *testing.T) {
	args := []string{"-events", "2000", "-batch", "500", "-orgs", "1,2", "-nosync", "-workos"}
	if os.Getenv("ROSTERBENCH_WEBHOOK_FULL") != "" {
		args = nil
	}
	var out bytes.Buffer
	if err := runWebhook(args, &out); err != nil {
		t.Fatalf("runWebhook: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if lines := strings.Count(out.String(), "\n"); lines != 4 {
		t.Errorf("output has %d lines; want a header, a title and 2 runs", lines)
	}
}
