package schema

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf16"
)

// onlyReader hides every method but Read (a pipe, a network stream).
type onlyReader struct{ io.Reader }

func dupEmails(c *Checker) []Issue {
	var out []Issue
	for _, is := range c.Issues() {
		if is.Code == CodeDuplicateEmail {
			out = append(out, is)
		}
	}
	return out
}

// TestDuplicateEmailShowsOwnSpelling: each duplicate_email issue shows the
// email as written on its own line, and its message the other line's
// spelling, whatever the file's encoding and line layout.
func TestDuplicateEmailShowsOwnSpelling(t *testing.T) {
	const users = "user_id,email,first_name,last_name\n" +
		"E1, ann.lee@example.com ,Ann,Lee\n" + // line 2
		"E2,\"bob@example.com\",\"Bob\nthe builder\",Ray\n" + // lines 3-4
		"E3,Ann.Lee@Example.com,Annie,Lee\n" + // line 5
		"E4,BOB@EXAMPLE.COM,Rob,Ray\n" + // line 6
		"E5,ANN.LEE@example.com,Anne,Lee\n" // line 7
	utf16le := func(s string) []byte {
		b := []byte{0xFF, 0xFE}
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return b
	}
	want := []Issue{
		{Line: 2, Value: "ann.lee@example.com", Message: `email "ann.lee@example.com" also appears on line 5, written "Ann.Lee@Example.com" (upper and lower case count as the same) — each person needs their own address`},
		{Line: 3, Value: "bob@example.com", Message: `email "bob@example.com" also appears on line 6, written "BOB@EXAMPLE.COM" (upper and lower case count as the same) — each person needs their own address`},
		{Line: 5, Value: "Ann.Lee@Example.com", Message: `email "Ann.Lee@Example.com" also appears on line 2, written "ann.lee@example.com" (upper and lower case count as the same) — each person needs their own address`},
		{Line: 6, Value: "BOB@EXAMPLE.COM", Message: `email "BOB@EXAMPLE.COM" also appears on line 3, written "bob@example.com" (upper and lower case count as the same) — each person needs their own address`},
		{Line: 7, Value: "ANN.LEE@example.com", Message: `email "ANN.LEE@example.com" also appears on line 2, written "ann.lee@example.com" (upper and lower case count as the same) — each person needs their own address`},
	}
	prefix := []byte("#junk before the file#")
	for name, src := range map[string]func() io.Reader{
		"utf-8":     func() io.Reader { return strings.NewReader(users) },
		"utf-16 le": func() io.Reader { return bytes.NewReader(utf16le(users)) },
		"crlf":      func() io.Reader { return strings.NewReader(strings.ReplaceAll(users, "\n", "\r\n")) },
		"offset reader": func() io.Reader {
			r := bytes.NewReader(append(prefix, users...))
			r.Seek(int64(len(prefix)), io.SeekStart)
			return r
		},
	} {
		c := NewChecker(Limits{}, nil)
		if _, err := c.Users(src(), "users.csv", nil); err != nil {
			t.Fatalf("%s: Users: %v", name, err)
		}
		got := dupEmails(c)
		if len(got) != len(want) {
			t.Fatalf("%s: duplicate_email issues = %+v; want %d", name, got, len(want))
		}
		for i := range want {
			if got[i].Line != want[i].Line || got[i].Value != want[i].Value || got[i].Message != want[i].Message {
				t.Errorf("%s: issue %d = line %d %q %q\nwant line %d %q %q", name, i, got[i].Line, got[i].Value, got[i].Message,
					want[i].Line, want[i].Value, want[i].Message)
			}
		}
	}
}

// TestDuplicateEmailWithoutSeek: when the reader cannot seek, the earlier
// line's issue claims no spelling for it; the later line's is unchanged.
func TestDuplicateEmailWithoutSeek(t *testing.T) {
	c := NewChecker(Limits{}, nil)
	in := "user_id,email,first_name,last_name\nE1,ann@example.com,A,B\nE2,Ann@Example.com,C,D\n"
	if _, err := c.Users(onlyReader{strings.NewReader(in)}, "users.csv", nil); err != nil {
		t.Fatal(err)
	}
	got := dupEmails(c)
	if len(got) != 2 {
		t.Fatalf("issues = %+v; want two duplicate_email", got)
	}
	if got[0].Line != 2 || got[0].Value != "" || strings.Contains(got[0].Message, `email "Ann@Example.com"`) ||
		!strings.Contains(got[0].Message, `line 3, written "Ann@Example.com"`) {
		t.Errorf("earlier line's issue = %+v; want no value and a message naming line 3's spelling", got[0])
	}
	if got[1].Line != 3 || got[1].Value != "Ann@Example.com" ||
		got[1].Message != `email "Ann@Example.com" also appears on line 2 (upper and lower case count as the same) — each person needs their own address` {
		t.Errorf("later line's issue = %+v; want its own spelling", got[1])
	}
}

// TestDuplicateEmailAcrossWindows: a repeat found in a later window
// (more than 65,536 rows apart) still gets the earlier spelling, and the
// re-read stops at the last line it needs.
func TestDuplicateEmailAcrossWindows(t *testing.T) {
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name\n")
	b.WriteString("E0,First.Person@example.com,A,B\n")
	n := windowSize + 10
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "E%d,p%d@example.com,A,B\n", i, i)
	}
	b.WriteString("EX,first.person@EXAMPLE.com,A,B\n")
	c := NewChecker(Limits{}, nil)
	if _, err := c.Users(strings.NewReader(b.String()), "users.csv", nil); err != nil {
		t.Fatal(err)
	}
	got := dupEmails(c)
	if len(got) != 2 || got[0].Line != 2 || got[0].Value != "First.Person@example.com" ||
		got[1].Line != n+2 || got[1].Value != "first.person@EXAMPLE.com" || !strings.Contains(got[1].Message, `written "First.Person@example.com"`) {
		t.Errorf("issues = %+v; want lines 2 and %d with their own spellings", got, n+2)
	}
}
