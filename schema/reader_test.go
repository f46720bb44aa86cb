package schema

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRealExports reads the same three people as written by the tools
// customers use (files under testdata/exports, see their names).
func TestRealExports(t *testing.T) {
	want := []User{
		{Line: 2, ID: "E1001", Email: "zoe.muller@example.com", FirstName: "Zoë", LastName: "Müller", Active: true, Custom: []Attr{{"Preferred Language", "de"}}},
		{Line: 3, ID: "E1002", Email: "jose.garcia@example.com", FirstName: "José", LastName: "García", Active: true, Custom: []Attr{{"Preferred Language", "es"}}},
		{Line: 4, ID: "E1003", Email: "li.wei@example.com", FirstName: "伟", LastName: "李", Active: true},
	}
	want[0].Known[JobTitle], want[0].Known[WorkAddressStreet], want[0].Known[WorkAddressLocality] = "Engineer, Platform", "1 Main St", "Zürich"
	want[1].Known[JobTitle], want[1].Known[WorkAddressStreet], want[1].Known[WorkAddressLocality] = `Sales "Lead"`, "2 High St", "Sevilla"
	want[2].Known[JobTitle], want[2].Known[WorkAddressStreet], want[2].Known[WorkAddressLocality] = "Manager", "3 Ring Rd", "北京"

	files, _ := filepath.Glob("testdata/exports/*")
	if len(files) < 8 {
		t.Fatalf("found %d export files; want 8", len(files))
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			w := want
			if strings.Contains(name, "multiline") {
				w = append([]User(nil), want...)
				w[1].Line, w[2].Line = 4, 6
				w[1].Known[WorkAddressStreet] = "2 High St\nFloor 3"
			}
			c := NewChecker(Limits{}, nil)
			var got []User
			_, err = c.Users(bytes.NewReader(data), "users.csv", func(u *User) error {
				v := *u
				v.Custom = append([]Attr(nil), u.Custom...)
				if len(v.Custom) == 0 {
					v.Custom = nil
				}
				got = append(got, v)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if is := c.Issues(); len(is) != 0 {
				t.Errorf("issues: %v", is)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("users (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDetectDelimiter(t *testing.T) {
	tests := []struct {
		in   string
		want byte
	}{
		{"a,b,c\n1;2;3;4;5\n", ','},
		{"a;b;c\n", ';'},
		{"a\tb\tc\n", '\t'},
		{"\n\n\"x,y\";b;c\n", ';'},
		{"user_id\n", ','},
		{"a;b,c;d\n", ';'},
	}
	for _, tt := range tests {
		br, _ := openText(strings.NewReader(tt.in))
		if got := detectDelimiter(br); got != tt.want {
			t.Errorf("detectDelimiter(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// readAll reads every record with the package reader, untrimmed fields
// compared as trimmed strings, with the line of each field.
func readAll(t testing.TB, in []byte, delim byte) ([][]string, [][]int, error) {
	br, _ := openText(bytes.NewReader(in))
	rd := &reader{br: br, delim: delim, maxField: 1 << 20, maxLine: 1 << 22}
	var recs [][]string
	var lines [][]int
	for {
		err := rd.next()
		if err == io.EOF {
			return recs, lines, nil
		}
		if err != nil {
			return recs, lines, err
		}
		if rd.rec.problem != probNone {
			return recs, lines, errors.New("problem")
		}
		if rd.rec.blank() {
			continue
		}
		var rec []string
		var ln []int
		for i, f := range rd.rec.fields {
			rec = append(rec, string(rd.rec.value(i)))
			ln = append(ln, f.line)
		}
		recs = append(recs, rec)
		lines = append(lines, ln)
	}
}

// stdRead reads in with encoding/csv, returning trimmed fields and lines,
// and whether the input is in the domain where both readers must agree.
func stdRead(in []byte) ([][]string, [][]int, bool) {
	if bytes.IndexByte(in, '\r') >= 0 || bytes.HasPrefix(in, []byte{0xEF, 0xBB, 0xBF}) ||
		bytes.HasPrefix(in, []byte{0xFF, 0xFE}) || bytes.HasPrefix(in, []byte{0xFE, 0xFF}) {
		return nil, nil, false
	}
	r := csv.NewReader(bytes.NewReader(in))
	r.FieldsPerRecord = -1
	var recs [][]string
	var lines [][]int
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return recs, lines, true
		}
		if err != nil {
			return nil, nil, false
		}
		if allEmpty(rec) {
			continue
		}
		var ln []int
		for i := range rec {
			l, _ := r.FieldPos(i)
			ln = append(ln, l)
			// The package reader trims and allows spaces around quotes;
			// stay where encoding/csv reads the same characters.
			if strings.Contains(rec[i], `"`) || strings.TrimSpace(rec[i]) != rec[i] || strings.ContainsRune(rec[i], '\uFEFF') {
				return nil, nil, false
			}
		}
		recs = append(recs, rec)
		lines = append(lines, ln)
	}
}

func allEmpty(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func TestReaderMatchesEncodingCSV(t *testing.T) {
	inputs := []string{
		"a,b,c\n1,2,3\n",
		"a,\"b\nc\",d\n\n\"x\"\"y\",,\n",
		"a,b\n\"1\n\n2\",3\n4,5",
		"a\n\n\nb\n",
		"\"\"\n",
		"a,\"multi\r\nline\",c\r\n",
	}
	for _, in := range inputs {
		checkAgainstStd(t, []byte(in))
	}
}

func checkAgainstStd(t *testing.T, in []byte) {
	want, wantLines, ok := stdRead(in)
	if !ok {
		return
	}
	got, gotLines, err := readAll(t, in, ',')
	if err != nil {
		t.Fatalf("read %q: %v", in, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("read %q: records differ from encoding/csv (-std +ours):\n%s", in, diff)
	}
	if diff := cmp.Diff(wantLines, gotLines); diff != "" {
		t.Fatalf("read %q: field lines differ from encoding/csv (-std +ours):\n%s", in, diff)
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxFileSize: 200, MaxColumns: 5, MaxFieldSize: 10}
	tests := []struct {
		name string
		lim  Limits
		in   string
		want []string
	}{
		{"field too long", lim, hdr + "E1,a@x.com,Bartholomew-Maximilian,Lee\n", []string{"field_too_long@2:first_name"}},
		{"quoted field too long", lim, hdr + "E1,a@x.com,\"Bart\nholomew\nMaximilian\",Lee\n", []string{"field_too_long@2:first_name"}},
		{"unterminated quote stays bounded", lim, hdr + "E1,a@x.com,\"" + strings.Repeat("x\n", 50), []string{"unclosed_quote@2:first_name"}},
		{"too many columns", lim, "user_id,email,first_name,last_name,a,b\n", []string{"too_many_columns@1"}},
		{"file too large", lim, hdr + strings.Repeat("E1,a@x.com,A,B\n", 20), []string{"file_too_large@0", "duplicate_user_id@2:user_id"}},
		{"line too long", Limits{MaxColumns: 5, MaxFieldSize: 10}, hdr + "E1,a@x.com,A,B" + strings.Repeat(",", 70000) + "x\n", []string{"line_too_long@2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(tt.lim, nil)
			if _, err := c.Users(strings.NewReader(tt.in), "users.csv", nil); err != nil {
				t.Fatal(err)
			}
			got := brief(c.Issues())
			if tt.want != nil && !cmp.Equal(tt.want, got[:min(len(got), len(tt.want))]) {
				t.Errorf("issues = %v; want prefix %v", got, tt.want)
			}
			if c.Errors() == 0 {
				t.Errorf("no error for %s", tt.name)
			}
		})
	}
}

// FuzzPlainLine checks that reading a line without quotes in one copy
// (reader.plainLine) keeps the same bytes, fields, lines and problems as
// reading it field by field, in both the reader's modes.
func FuzzPlainLine(f *testing.F) {
	seeds(f)
	f.Add([]byte("a, b ,\u00a0c\u00a0,\ufeffd\n\xc3,\xa9\n" + strings.Repeat("x", 70) + ",y\n  ,\t,\n"))
	f.Add([]byte("a\tb \t c\n \u2003x\u2003\t\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, keep := range []bool{false, true} {
			read := func(slow bool) (recs []record, end error, line int) {
				br, _ := openText(bytes.NewReader(in))
				rd := &reader{br: br, delim: detectDelimiter(br), maxField: 64, maxLine: 1024, keep: keep, slow: slow}
				for {
					if end = rd.next(); end != nil {
						return recs, end, rd.line
					}
					r := rd.rec
					r.buf = bytes.Clone(r.buf[rd.base:])
					r.fields = append([]field(nil), r.fields[rd.fbase:]...)
					recs = append(recs, r)
				}
			}
			want, wantEnd, wantLine := read(true)
			got, gotEnd, gotLine := read(false)
			if gotEnd != wantEnd || gotLine != wantLine {
				t.Errorf("keep %v: ended with %v at line %d; field by field with %v at line %d", keep, gotEnd, gotLine, wantEnd, wantLine)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(record{}, field{})); diff != "" {
				t.Errorf("keep %v: records (-field by field +plainLine):\n%s", keep, diff)
			}
		}
	})
}

// TestUTF8SplitByDelimiter checks that a character split across two values
// is invalid UTF-8: the values are checked with the delimiter between
// them, not joined.
func TestUTF8SplitByDelimiter(t *testing.T) {
	for _, row := range []string{"E1,a@x.com,\xc3,\xa9\n", "E1,a@x.com,\"\xc3\",\"\xa9\"\n", "E1,a@x.com,\"\xc3\",\xa9\n"} {
		c := NewChecker(Limits{}, nil)
		n := 0
		c.Users(strings.NewReader("user_id,email,first_name,last_name\n"+row), "users.csv", func(*User) error { n++; return nil })
		if counts := c.IssueCounts(); counts[CodeInvalidUTF8] != 1 || n != 0 {
			t.Errorf("%q: issues %v, %d users; want one invalid_utf8 and none", row, c.Issues(), n)
		}
	}
}
