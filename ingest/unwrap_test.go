package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// lookPath finds a program a test needs: missing, the test skips, or
// fails under CI=true (as sftptest.LookPath does).
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// run runs a program in dir and returns its standard output.
func run(t testing.TB, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(lookPath(t, name), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

const exportUsers = "user_id,email,first_name,last_name,department_name\n" +
	"E1,ann@example.com,Ann,Lee,Sales\nE2,bob@example.com,Bob,Ray,R&D\nE3,cy@example.com,Cy,Ng,R&D\n"
const exportMembers = "group_name,user_id\nSales,E1\nEngineering,E2\nEngineering,E3\n"

// uploadEvents uploads files (name → content) to a new organization
// and returns its batch and events.
func uploadEvents(t *testing.T, st state.Settings, tune func(*Config), files map[string][]byte) (state.Batch, []eventView, *env) {
	t.Helper()
	e := newEnvWith(t, "acme", st, Defaults{Settle: 200 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"}, tune)
	for name, data := range files {
		e.upload(name, data)
	}
	b := e.waitBatch("", 20*time.Second)
	return b, e.batchEvents(b.ID), e
}

// TestCompressedUploads uploads the same export plain, gzipped (one and
// two gzip members, as gzip and cat make them), as a zip of both files
// (with a folder and macOS metadata in it, as Finder makes them), and
// gzipped under an organization's pattern: each batch is applied with the
// same events as the plain files, and its report names the file inside.
func TestCompressedUploads(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte(exportUsers), 0o644)
	os.WriteFile(filepath.Join(dir, "user_groups.csv"), []byte(exportMembers), 0o644)
	gz := run(t, dir, nil, "gzip", "-c", "-9", "users.csv")
	gzMembers := run(t, dir, nil, "gzip", "-c", "user_groups.csv")
	// Two gzip members, one after the other: gzip -d reads them as one.
	half := strings.Index(exportMembers, "Engineering,E2")
	os.WriteFile(filepath.Join(dir, "a"), []byte(exportMembers[:half]), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), []byte(exportMembers[half:]), 0o644)
	twoMembers := append(run(t, dir, nil, "gzip", "-c", "a"), run(t, dir, nil, "gzip", "-c", "b")...)
	os.MkdirAll(filepath.Join(dir, "export", "__MACOSX"), 0o755)
	os.WriteFile(filepath.Join(dir, "export", "users.csv"), []byte(exportUsers), 0o644)
	os.WriteFile(filepath.Join(dir, "export", "user_groups.csv"), []byte(exportMembers), 0o644)
	os.WriteFile(filepath.Join(dir, "export", "README.txt"), []byte("export of 2026-11-22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "export", "__MACOSX", "._users.csv"), []byte("\x00\x05\x16\x07"), 0o644)
	run(t, dir, nil, "zip", "-q", "-r", "export.zip", "export")
	zipped, _ := os.ReadFile(filepath.Join(dir, "export.zip"))

	plain := map[string][]byte{"users.csv": []byte(exportUsers), "user_groups.csv": []byte(exportMembers)}
	_, want, _ := uploadEvents(t, state.Settings{}, nil, plain)
	if len(want) == 0 {
		t.Fatal("the plain upload emitted no events")
	}
	tests := []struct {
		name    string
		st      state.Settings
		files   map[string][]byte
		inner   []string // the report's files: name → inner
		decoded string
		noNote  string
	}{
		{"gzip", state.Settings{}, map[string][]byte{"users.csv.gz": gz, "user_groups.csv.GZ": gzMembers},
			[]string{"users.csv.gz → users.csv", "user_groups.csv.GZ → user_groups.csv"}, "gzip-compressed", ""},
		{"gzip with two members", state.Settings{}, map[string][]byte{"users.csv": []byte(exportUsers), "user_groups.csv.gz": twoMembers},
			[]string{"users.csv", "user_groups.csv.gz → user_groups.csv"}, "gzip-compressed", ""},
		{"zip", state.Settings{}, map[string][]byte{"export.zip": zipped},
			[]string{"export.zip → export/users.csv", "export.zip → export/user_groups.csv"}, "from the zip archive",
			"export.zip holds"},
		{"pattern without the suffix", state.Settings{UsersPatterns: []string{"hr_*.csv"}}, map[string][]byte{"hr_20261122.csv.gz": gz, "user_groups.csv": []byte(exportMembers)},
			[]string{"hr_20261122.csv.gz → hr_20261122.csv", "user_groups.csv"}, "gzip-compressed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, got, e := uploadEvents(t, tt.st, nil, tt.files)
			if b.Status != state.BatchApplied {
				t.Fatalf("status %s (%s); want applied; report:\n%s", b.Status, b.Reason, e.reportText(b))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events differ from the plain upload's (-plain +%s):\n%s", tt.name, diff)
			}
			var files []string
			for _, f := range b.Files {
				s := f.Name
				if f.Inner != "" {
					s += " → " + f.Inner
					if f.Decoded != tt.decoded {
						t.Errorf("%s decoded %q; want %q", f.Name, f.Decoded, tt.decoded)
					}
					if f.InnerSize == 0 {
						t.Errorf("%s: inner size 0", f.Name)
					}
				}
				files = append(files, s)
			}
			if diff := cmp.Diff(tt.inner, files); diff != "" {
				t.Errorf("batch files (-want +got):\n%s", diff)
			}
			txt := e.reportText(b)
			for _, f := range tt.inner {
				if strings.Contains(f, "→") && !strings.Contains(txt, f) {
					t.Errorf("the report does not name %q:\n%s", f, txt)
				}
			}
			if tt.noNote != "" && strings.Contains(txt, tt.noNote) {
				t.Errorf("a zip with README.txt beside the canonical files should not be noted as holding none:\n%s", txt)
			}
		})
	}
}

// reportText reads the batch's text report from the organization's
// reports folder.
func (e *env) reportText(b state.Batch) string {
	e.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(e.orgDir, "reports", "*-"+b.ID+".txt"))
	deadline := time.Now().Add(10 * time.Second)
	for len(matches) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		matches, _ = filepath.Glob(filepath.Join(e.orgDir, "reports", "*-"+b.ID+".txt"))
	}
	if len(matches) == 0 {
		e.t.Fatalf("no report for batch %s", b.ID)
	}
	raw, err := os.ReadFile(matches[0])
	if err != nil {
		e.t.Fatal(err)
	}
	return string(raw)
}

// reportIssues reads the batch's JSON report's issues.
func (e *env) reportIssues(b state.Batch) []schema.Issue {
	e.t.Helper()
	raw, err := e.db.BatchReport(e.org, b.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var rep struct{ Issues []schema.Issue }
	if err := json.Unmarshal(raw, &rep); err != nil {
		e.t.Fatal(err)
	}
	return rep.Issues
}

// TestBadCompressedUploads checks that a damaged, cut-off or exploding
// compressed upload is rejected with a report that says so, and changes
// nothing.
func TestBadCompressedUploads(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte(exportUsers), 0o644)
	gz := run(t, dir, nil, "gzip", "-c", "users.csv")
	flipped := bytes.Clone(gz)
	flipped[len(flipped)-6] ^= 0xff // the CRC
	// A bomb: 64 MB of one repeated line, 1,000 times smaller gzipped.
	bomb := filepath.Join(dir, "bomb.csv")
	f, _ := os.Create(bomb)
	f.WriteString("user_id,email,first_name,last_name\n")
	line := bytes.Repeat([]byte("x"), 1<<20)
	for range 64 {
		f.Write(line)
	}
	f.Close()
	bombGz := run(t, dir, nil, "gzip", "-c", "-9", "bomb.csv")
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte(exportUsers), 0o644)
	run(t, dir, nil, "zip", "-q", "-P", "secret", "locked.zip", "users.csv")
	locked, _ := os.ReadFile(filepath.Join(dir, "locked.zip"))
	run(t, dir, nil, "zip", "-q", "other.zip", "bomb.csv")
	other, _ := os.ReadFile(filepath.Join(dir, "other.zip"))

	tests := []struct {
		name, file string
		data       []byte
		code, msg  string
	}{
		{"not gzip", "users.csv.gz", []byte(exportUsers), schema.CodeCorruptFile, "users.csv.gz cannot be decompressed: it is not gzip data"},
		{"cut off", "users.csv.gz", gz[:len(gz)/2], schema.CodeCorruptFile, "users.csv.gz cannot be decompressed: it ends too early: the upload was cut off"},
		{"bad checksum", "users.csv.gz", flipped, schema.CodeCorruptFile, "users.csv.gz cannot be decompressed: its checksum does not match"},
		{"bomb", "users.csv.gz", bombGz, schema.CodeCompressionRatio, "users.csv.gz expands more than 100 times"},
		{"password-protected zip", "export.zip", locked, "users_file_required", ""},
		{"zip without the files", "export.zip", other, "users_file_required", ""},
		{"not a zip", "export.zip", gz, "users_file_required", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, evs, e := uploadEvents(t, state.Settings{}, nil, map[string][]byte{tt.file: tt.data})
			if b.Status != state.BatchRejected || len(evs) != 0 {
				t.Fatalf("status %s with %d events; want rejected with none; report:\n%s", b.Status, len(evs), e.reportText(b))
			}
			is := e.reportIssues(b)
			if len(is) == 0 || is[0].Code != tt.code || !strings.Contains(is[0].Message, tt.msg) {
				t.Errorf("issues %+v;\nwant %s: %q", is, tt.code, tt.msg)
			}
			if tt.file == "export.zip" {
				txt := e.reportText(b)
				if !strings.Contains(txt, "export.zip") {
					t.Errorf("the report does not say what became of export.zip:\n%s", txt)
				}
			}
		})
	}
}

// TestSplitName is a row per upload name: the name without its wrapping
// and the layers, outermost first.
func TestSplitName(t *testing.T) {
	tests := []struct {
		in, inner string
		layers    string
	}{
		{"users.csv", "users.csv", ""},
		{"users.csv.gz", "users.csv", "z"},
		{"users.csv.GPG", "users.csv", "p"},
		{"users.csv.pgp", "users.csv", "p"},
		{"users.csv.asc", "users.csv", "p"},
		{"users.csv.gz.gpg", "users.csv", "pz"},
		{"export.zip", "export.zip", "Z"},
		{"export.zip.gpg", "export.zip", "pZ"},
		{"a.gz.gz.gz.gz.gz", "a.gz", "zzzz"},
	}
	for _, tt := range tests {
		inner, layers := splitName(tt.in)
		if inner != tt.inner || string(layers) != tt.layers {
			t.Errorf("splitName(%q) = %q, %q; want %q, %q", tt.in, inner, layers, tt.inner, tt.layers)
		}
	}
}

// decodeBytes decodes data uploaded as name and returns the text, the
// InputError that stopped it (nil at a clean end) and how it was read.
func decodeBytes(t testing.TB, name string, data []byte, o decodeOpts) ([]byte, *schema.InputError, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	bf := &state.BatchFile{Name: name}
	d, err := decode(context.Background(), fh, int64(len(data)), bf, o)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	text, err := io.ReadAll(io.LimitReader(d, 256<<20))
	var ie *schema.InputError
	if err != nil && !errors.As(err, &ie) {
		t.Fatalf("read %s: %v (%T)", name, err, err)
	}
	return text, ie, bf.Decoded
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{12: "12 bytes", 1500: "2 KB", 2_500_000: "2.5 MB", 3_000_000_000: "3.0 GB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q; want %q", n, got, want)
		}
	}
}
