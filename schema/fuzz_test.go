package schema

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// seeds adds the export files, the examples and a few tricky inputs.
func seeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/exports/*")
	more, _ := filepath.Glob("../examples/csv/*/*.csv")
	more2, _ := filepath.Glob("../examples/csv/broken/*/*.csv")
	for _, name := range append(append(files, more...), more2...) {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "\"", "\"\"\"", "a,\"b\n", "\xff\xfe", "\xfe\xff\x00a", "\xef\xbb\xbf", "a\rb\rc", "a;b\tc\n1;2\t3",
		hdr + "E1,a@x.com,A,B\r\nE1,A@X.COM,A,B", "group_name,user_id\nG,E1\nG,E1\n", "group_name,group_id\nA,1\nB,1\n",
		"user_id,email,first_name,last_name,employment_start_date\nE1,a@x.com,A,B,31.12.99\n",
	} {
		f.Add([]byte(s))
	}
}

func FuzzOpenText(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		br, enc := openText(bytes.NewReader(in))
		out, err := io.ReadAll(io.LimitReader(br, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if (enc == encUTF16LE || enc == encUTF16BE) && !utf8.Valid(out) {
			t.Errorf("UTF-16 input %q decoded to invalid UTF-8 %q", in, out)
		}
		if len(out) > 2*len(in)+3 {
			t.Errorf("decoded %d bytes from %d", len(out), len(in))
		}
		detectDelimiter(br)
	})
}

func FuzzReader(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		br, _ := openText(bytes.NewReader(in))
		rd := &reader{br: br, delim: detectDelimiter(br), maxField: 64, maxLine: 1024}
		last := 0
		for n := 0; ; n++ {
			if n > len(in)+1 {
				t.Fatalf("more records than bytes")
			}
			err := rd.next()
			if err != nil {
				break
			}
			if rd.rec.line < last {
				t.Fatalf("record line %d after %d", rd.rec.line, last)
			}
			last = rd.rec.line
			for i, fl := range rd.rec.fields {
				if len(rd.rec.value(i)) > 64 {
					t.Fatalf("field of %d bytes over the limit", len(rd.rec.value(i)))
				}
				if fl.line < rd.rec.line || fl.line > rd.line {
					t.Fatalf("field line %d outside record lines %d..%d", fl.line, rd.rec.line, rd.line)
				}
			}
			// Each field's value and the delimiter after it, and one
			// unfinished value.
			if len(rd.rec.buf) > (64+1)*(len(rd.rec.fields)+1) {
				t.Fatalf("record buffer of %d bytes for %d fields", len(rd.rec.buf), len(rd.rec.fields))
			}
		}
		if len(in) < 4096 {
			checkAgainstStd(t, in)
		}
	})
}

// checkIssues checks what every batch's issues must satisfy.
func checkIssues(t *testing.T, c *Checker, in []byte) {
	t.Helper()
	lines := bytes.Count(in, []byte{'\n'}) + bytes.Count(in, []byte{'\r'}) + 1
	total := 0
	for _, n := range c.IssueCounts() {
		total += n
	}
	if total != c.Errors()+c.Warnings() {
		t.Errorf("counts add up to %d; errors+warnings = %d", total, c.Errors()+c.Warnings())
	}
	for _, is := range c.Issues() {
		if is.Line < 0 || is.Line > lines {
			t.Errorf("issue on line %d of a %d-line input: %+v", is.Line, lines, is)
		}
		if !utf8.ValidString(is.Value) || utf8.RuneCountInString(is.Value) > 80 {
			t.Errorf("bad value %q", is.Value)
		}
		if !utf8.ValidString(is.Message) || len(is.Message) > 2000 {
			t.Errorf("bad message %q", is.Message)
		}
		if is.Severity != SeverityOf(is.Code) {
			t.Errorf("issue %s has severity %s; SeverityOf says %s", is.Code, is.Severity, SeverityOf(is.Code))
		}
	}
}

var fuzzLimits = Limits{MaxFileSize: 1 << 16, MaxColumns: 16, MaxFieldSize: 128}

func FuzzUsers(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := NewChecker(fuzzLimits, nil)
		n := 0
		if _, err := c.Users(bytes.NewReader(in), "users.csv", func(u *User) error {
			n++
			if u.ID == "" || u.Email == "" || u.FirstName == "" || u.LastName == "" {
				t.Errorf("callback got an incomplete user %+v", u)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkIssues(t, c, in)
		c2 := NewChecker(fuzzLimits, nil)
		c2.Users(bytes.NewReader(in), "users.csv", nil)
		if diff := cmp.Diff(c.Issues(), c2.Issues()); diff != "" {
			t.Errorf("nil callback changes the issues:\n%s", diff)
		}
		if n < c.Stats().Users {
			t.Errorf("callback called %d times; Stats().Users = %d is more", n, c.Stats().Users)
		}
	})
}

func FuzzUserGroups(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := NewChecker(fuzzLimits, func(id string) bool { return len(id)%2 == 0 })
		seen := map[Membership]bool{}
		if _, err := c.UserGroups(bytes.NewReader(in), "user_groups.csv", func(m *Membership) error {
			k := Membership{GroupName: m.GroupName, UserID: m.UserID}
			if seen[k] || m.GroupName == "" || len(m.UserID)%2 != 0 {
				t.Errorf("callback got %+v (repeat %v)", m, seen[k])
			}
			seen[k] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkIssues(t, c, in)
		if n := c.Stats().Memberships; n != len(seen) {
			t.Errorf("Stats().Memberships = %d; the callback saw %d", n, len(seen))
		}
	})
}

func FuzzGroups(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := NewChecker(fuzzLimits, nil)
		if _, err := c.Groups(bytes.NewReader(in), "groups.csv", func(g *Group) error {
			if g.Name == "" {
				t.Errorf("callback got a group without name")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkIssues(t, c, in)
	})
}
