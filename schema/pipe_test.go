package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// bigUsers returns a users.csv of n valid rows, several chunks long.
func bigUsers(n int) string {
	var b strings.Builder
	b.WriteString(hdr)
	for i := range n {
		fmt.Fprintf(&b, "U%d,u%d@example.com,\"First, %d\",Last\n", i, i, i)
	}
	return b.String()
}

// watchReader counts the reads made after closed is set.
type watchReader struct {
	r      io.Reader
	closed atomic.Bool
	late   atomic.Int32
}

func (w *watchReader) Read(p []byte) (int, error) {
	if w.closed.Load() {
		w.late.Add(1)
	}
	return w.r.Read(p)
}

// waitGoroutines polls until at most n goroutines run, or fails.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines run after the call; %d before", runtime.NumGoroutine(), n)
		}
		runtime.Gosched()
	}
}

// TestPipeStopsWithTheCall checks that the reading goroutine is gone, and
// the reader no longer read, when a call returns early (the callback's
// error) or at the end of each kind of file.
func TestPipeStopsWithTheCall(t *testing.T) {
	in := bigUsers(20000)
	stop := errors.New("stop")
	before := runtime.NumGoroutine()
	for _, at := range []int{1, 2000, 20000, -1} {
		c := NewChecker(Limits{}, nil)
		w := &watchReader{r: strings.NewReader(in)}
		n := 0
		_, err := c.Users(w, "users.csv", func(*User) error {
			if n++; n == at {
				return stop
			}
			return nil
		})
		w.closed.Store(true)
		if want := error(nil); at > 0 && err != stop || at < 0 && err != want {
			t.Errorf("stop at %d: Users returned %v", at, err)
		}
		if at > 0 && n != at {
			t.Errorf("stop at %d: the callback ran %d times", at, n)
		}
		waitGoroutines(t, before)
		if w.late.Load() != 0 {
			t.Errorf("stop at %d: %d reads after Users returned", at, w.late.Load())
		}
		var m strings.Builder
		m.WriteString("group_name,user_id\n")
		for i := range 20000 {
			fmt.Fprintf(&m, "G%d,U%d\n", i%7, i)
		}
		n = 0
		c = NewChecker(Limits{}, func(string) bool { return true })
		if _, err := c.UserGroups(strings.NewReader(m.String()), "user_groups.csv", func(*Membership) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		}); err != stop {
			t.Errorf("UserGroups returned %v; want the callback's error", err)
		}
		if _, err := c.Groups(strings.NewReader("group_name\nA\nB\n"), "groups.csv", func(*Group) error { return stop }); err != stop {
			t.Errorf("Groups returned %v; want the callback's error", err)
		}
		waitGoroutines(t, before)
	}
}

// failReader returns err once n bytes have been read.
type failReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	k, err := f.r.Read(p)
	f.n -= k
	return k, err
}

// TestPipeReadingStops checks the ends of reading that come from the
// reading goroutine, far into a file: an I/O error, the file size limit
// and a line no row could fill, each after the rows before it were
// checked.
func TestPipeReadingStops(t *testing.T) {
	in := bigUsers(30000)
	cut := strings.Index(in, "\nU20000,") + 1 // the start of line 20002
	broken := errors.New("disk on fire")

	c := NewChecker(Limits{}, nil)
	n := 0
	_, err := c.Users(&failReader{strings.NewReader(in), cut, broken}, "users.csv", func(*User) error { n++; return nil })
	if !errors.Is(err, broken) || n != 20000 {
		t.Errorf("I/O error: Users = %v after %d rows; want %v after 20000", err, n, broken)
	}

	c = NewChecker(Limits{MaxFileSize: int64(cut)}, nil)
	res, err := c.Users(strings.NewReader(in), "users.csv", nil)
	if err != nil || brief(c.Issues())[0] != "file_too_large@0" || res.Rows < 19000 || res.Rows > 25000 {
		t.Errorf("size limit: Users = %+v, %v, %v", res, err, brief(c.Issues()))
	}

	long := in[:cut] + strings.Repeat("x", bufSize+100) + "\n" + in[cut:]
	c = NewChecker(Limits{MaxColumns: 4, MaxFieldSize: 40}, nil)
	res, err = c.Users(strings.NewReader(long), "users.csv", nil)
	if diff := cmp.Diff([]string{"line_too_long@20002"}, brief(c.Issues())); err != nil || diff != "" || res.Rows != 20000 {
		t.Errorf("long line: Users = %+v, %v; issues (-want +got):\n%s", res, err, diff)
	}
}

// TestPipeChunkEdges checks records that straddle the chunks: quoted line
// breaks, blank lines, problems and wrong field counts, at every distance
// from a chunk's end, against the same rows read one file per row.
func TestPipeChunkEdges(t *testing.T) {
	rows := []string{
		"U%d,u%d@x.com,\"multi\nline\",B",
		"",
		",,,",
		"U%d,u%d@x.com,\"bad\"quote,B",
		"U%d,u%d@x.com,A",
		"U%d,u%d@x.com,A,B,,",
		"U%d,u%d@x.com,A,B,C",
		"U%d,u%d@x.com,A,\xff",
		"  U%d , u%d@x.com ,\" A \", B ",
	}
	var b strings.Builder
	b.WriteString(hdr)
	type want struct {
		issues []Issue
		users  []User
	}
	var wants []want
	line := 2
	for i := range chunkRecs*2 + 50 {
		row := rows[i%len(rows)]
		if strings.Contains(row, "%d") {
			row = fmt.Sprintf(row, i, i)
		}
		c := NewChecker(Limits{}, nil)
		var got []User
		c.Users(strings.NewReader(hdr+row+"\n"), "users.csv", func(u *User) error {
			u.Line += line - 2
			got = append(got, *u)
			return nil
		})
		var is []Issue
		for _, x := range c.Issues() {
			if x.Code != CodeNoRows {
				x.Line += line - 2
				is = append(is, x)
			}
		}
		wants = append(wants, want{is, got})
		b.WriteString(row + "\n")
		line += strings.Count(row, "\n") + 1
	}
	c := NewChecker(Limits{}, nil)
	var got []User
	c.Users(strings.NewReader(b.String()), "users.csv", func(u *User) error {
		got = append(got, *u)
		return nil
	})
	var wantIssues []Issue
	var wantUsers []User
	utf8Seen := false
	for _, w := range wants {
		for _, x := range w.issues {
			if x.Code == CodeInvalidUTF8 {
				if utf8Seen {
					continue // reported once per file
				}
				utf8Seen = true
			}
			wantIssues = append(wantIssues, x)
		}
		wantUsers = append(wantUsers, w.users...)
	}
	if len(wantIssues) > MaxIssues {
		wantIssues = wantIssues[:MaxIssues]
	}
	if diff := cmp.Diff(wantIssues, c.Issues()); diff != "" {
		t.Errorf("issues (-one file per row +one file):\n%s", diff)
	}
	if diff := cmp.Diff(wantUsers, got); diff != "" {
		t.Errorf("users (-one file per row +one file):\n%s", diff)
	}
}

// FuzzPipe checks that the chunks of the reading goroutine hold the
// records the reader reads one at a time (blank ones left out), with the
// same values, lines, problems and UTF-8 verdicts, and the same end.
func FuzzPipe(f *testing.F) {
	seeds(f)
	f.Add([]byte(strings.Repeat("a,\"b\n\",c\n\n,,\n\"x\"y,z\n\xff,1\n", 900)))
	f.Fuzz(func(t *testing.T, in []byte) {
		open := func() *reader {
			br, _ := openText(bytes.NewReader(in))
			return &reader{br: br, delim: detectDelimiter(br), maxField: 64, maxLine: 1024}
		}
		type rec struct {
			Line, ProbAt, ProbLn int
			Problem              problem
			Valid                bool
			Values               []string
			Lines                []int
		}
		conv := func(r *record, valid bool) rec {
			out := rec{Line: r.line, Problem: r.problem, Valid: valid}
			if r.problem != probNone {
				out.ProbAt, out.ProbLn = r.probAt, r.probLn
			}
			for i, fl := range r.fields {
				out.Values = append(out.Values, string(r.value(i)))
				out.Lines = append(out.Lines, fl.line)
			}
			return out
		}
		var want []rec
		rd := open()
		var wantErr error
		for {
			if wantErr = rd.next(); wantErr != nil {
				break
			}
			if rd.rec.problem == probNone && rd.rec.blank() {
				continue
			}
			want = append(want, conv(&rd.rec, utf8.Valid(rd.rec.buf)))
		}
		wantLine := rd.line
		p := startPipe(open())
		defer p.close()
		var got []rec
		var r record
		var pos int64
		for {
			line, err := p.read(&r, &pos)
			if err != nil {
				if err != wantErr || line != wantLine {
					t.Errorf("pipe ended with %v at line %d; reader with %v at line %d", err, line, wantErr, wantLine)
				}
				break
			}
			got = append(got, conv(&r, r.valid))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("records (-reader +pipe):\n%s", diff)
		}
	})
}
