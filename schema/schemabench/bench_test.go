package schemabench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/schema"
)

// TestWriteUsersValid checks that the generated file is valid, has the
// promised shape, and that Run measures it.
func TestWriteUsersValid(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteUsers(&buf, 2000); err != nil {
		t.Fatal(err)
	}
	c := schema.NewChecker(schema.Limits{}, nil)
	res, err := c.Users(bytes.NewReader(buf.Bytes()), "users.csv", nil)
	if err != nil || res.Rows != 2000 || c.Errors()+c.Warnings() != 0 {
		t.Fatalf("Users = %+v, %v, issues %v", res, err, c.Issues())
	}
	if n := strings.Count(Header, ","); n < 20 {
		t.Errorf("header has %d columns; want 20+", n+1)
	}
	path := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(path, buf.Bytes(), 0o644)
	r, err := Run(path, 1)
	if err != nil || r.Rows != 2000 {
		t.Fatalf("Run = %+v, %v", r, err)
	}
}

// BenchmarkUsers1M generates a 1,000,000-user users.csv (23 columns,
// non-ASCII names, quoted commas) and reads it with a bare encoding/csv
// loop and with schema.Checker.Users in each iteration. Metrics: the
// seconds and rows/s of each, validate/bare ratios, allocations per row
// and the peak heap of validation.
//
//	go test -run '^$' -bench Users1M -benchtime 3x ./schema/schemabench
func BenchmarkUsers1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "users.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteUsers(f, 1_000_000); err != nil {
		b.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(path)
	b.SetBytes(3 * st.Size()) // each iteration reads the file three times
	var bare, val, valFn, cpuBare, cpuVal, peak, allocs float64
	n := 0
	for b.Loop() {
		r, err := Run(path, 1)
		if err != nil {
			b.Fatal(err)
		}
		if r.Validate.Issues != 0 {
			b.Fatalf("%d issues in the generated file", r.Validate.Issues)
		}
		bare += r.Bare.Duration.Seconds()
		val += r.Validate.Duration.Seconds()
		valFn += r.ValidateFn.Duration.Seconds()
		cpuBare += r.Bare.CPU.Seconds()
		cpuVal += r.Validate.CPU.Seconds()
		peak = max(peak, float64(max(r.Validate.PeakHeap, r.ValidateFn.PeakHeap)))
		allocs += float64(r.ValidateFn.Allocs) / float64(r.Rows)
		n++
	}
	k := float64(n)
	b.ReportMetric(bare/k, "bare-s")
	b.ReportMetric(val/k, "validate-s")
	b.ReportMetric(valFn/k, "validate-fn-s")
	b.ReportMetric(val/bare, "ratio")
	b.ReportMetric(valFn/bare, "ratio-fn")
	b.ReportMetric(cpuVal/cpuBare, "cpu-ratio")
	b.ReportMetric(1e6*k/val, "rows/s")
	b.ReportMetric(allocs/k, "fn-allocs/row")
	b.ReportMetric(peak/1e6, "peak-heap-MB")
}
