package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rosterd/rosterd/schema"
)

func TestVisible(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Ann Lee", "Ann Lee"},
		{"Zoë Müller, Jr.", "Zoë Müller, Jr."},
		{`DOMAIN\ann`, `DOMAIN\ann`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"bell\x07", `bell\x07`},
		{"a\nb\r\nc\td", `a\nb\r\nc\td`},
		{"nul\x00", `nul\x00`},
		{"del\x7f", `del\x7f`},
		{"csi\u009b31m", `csi\u009b31m`},
		{"osc\u009d0;title\u009c", `osc\u009d0;title\u009c`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"iso\u2066late\u2069", `iso\u2066late\u2069`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"cut\xe2\x82", `cut\xe2\x82`},
		{"replacement \ufffd kept", "replacement \ufffd kept"},
		{"emoji 🙂 kept", "emoji 🙂 kept"},
	}
	for _, tt := range tests {
		if got := Visible(tt.in); got != tt.want {
			t.Errorf("Visible(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzVisible checks that Visible's output never holds a character a
// terminal obeys, and changes nothing else in plain text.
func FuzzVisible(f *testing.F) {
	for _, s := range []string{"", "a\x1bb", "\u009b", "\xff", "é\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := Visible(s)
		if !utf8.ValidString(v) {
			t.Fatalf("Visible(%q) = %q: not valid UTF-8", s, v)
		}
		for i, r := range v {
			if needsEscape(r, utf8.RuneLen(r)) {
				t.Fatalf("Visible(%q) = %q: %U at %d", s, v, r, i)
			}
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return needsEscape(r, utf8.RuneLen(r)) || r == utf8.RuneError }) && v != s {
			t.Fatalf("Visible(%q) = %q; want it unchanged", s, v)
		}
	})
}

// hostile is a users.csv whose header and values carry terminal escapes
// (ESC, BEL, a C1 CSI, a bidi override).
const hostile = "user_id,email,first_name,last_name,status\n" +
	"E1,ann@example.com,Ann,Lee,active\n" +
	"E2,\x1b]0;pwned\x07@x,Bo,Li,\n" +
	"E3,c@example.com,\u009b31mC,D,gone\x1b[0m\n" +
	"E1,d@example.com,\u202eevil,E,\n"

// TestControlCharsGolden checks that no renderer echoes a control
// character from an upload (issue 12, case 7): the text report and the
// issues CSV show them escaped, the JSON keeps the values exact but
// escaped too.
func TestControlCharsGolden(t *testing.T) {
	members := "group_name,user_id,no\x1b[8mte\nE\x1b[2J,E1\n"
	r, err := Validate([]Input{
		{Name: "users\x1b[1m.csv", Kind: schema.Users, R: strings.NewReader(hostile)},
		{Name: "user_groups.csv", R: strings.NewReader(members)},
	}, schema.Limits{}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	r.Notes = append(r.Notes, "a note naming users\x07.csv")
	txt, js, csv := render(t, r)
	for name, out := range map[string][]byte{"text": txt, "issues CSV": csv, "JSON": js} {
		for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e"} {
			if bytes.Contains(out, []byte(bad)) {
				t.Errorf("%s report holds %q raw:\n%s", name, bad, out)
			}
		}
	}
	for _, want := range []string{`\x1b]0;pwned\x07@x`, `users\x1b[1m.csv`, `gone\x1b[0m`, `no\x1b[8mte`} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Errorf("text report does not show %s:\n%s", want, txt)
		}
		if !bytes.Contains(csv, []byte(want)) && want != `users\x1b[1m.csv` {
			t.Errorf("issues CSV does not show %s:\n%s", want, csv)
		}
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	exact := false
	for _, is := range back.Issues {
		exact = exact || is.Value == "\x1b]0;pwned\x07@x"
	}
	if back.Files[0].Name != "users\x1b[1m.csv" || !exact {
		t.Errorf("JSON does not keep the exact values:\n%s", js)
	}
	golden(t, "testdata/control-chars.txt", txt)
	golden(t, "testdata/control-chars-issues.csv", csv)
	golden(t, "testdata/control-chars.json", js)
}

// TestRejectedCounts checks that a report of files with errors says how
// many rows were read, valid and wrong, not what would read as directory
// totals (issue 12, case 8).
func TestRejectedCounts(t *testing.T) {
	users := "user_id,email,first_name,last_name\n" +
		"E1,a@example.com,Ann,Lee\n" +
		"E2,,Bob,Ray\n" +
		"E3,c@x,C,D\n" +
		",d@example.com,D,E\n" +
		"E5,e@example.com,,\n" +
		"E6,f@example.com,F,G,H\n"
	r, err := Validate([]Input{{Name: "users.csv", R: strings.NewReader(users)}}, schema.Limits{}, testTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{StatusInvalid, "rejected"} {
		r.Status = st
		txt, js, _ := render(t, r)
		if want := "users.csv (users): 6 rows read: 1 valid, 5 with errors;"; !bytes.Contains(txt, []byte(want)) {
			t.Errorf("%s text lacks %q:\n%s", st, want, txt)
		}
		if bytes.Contains(txt, []byte("Counts:")) {
			t.Errorf("%s text still has a Counts line:\n%s", st, txt)
		}
		if !bytes.Contains(js, []byte(`"rows_with_errors": 5`)) {
			t.Errorf("%s JSON lacks rows_with_errors:\n%s", st, js)
		}
	}
	r.Status = "rejected"
	txt, _, _ := render(t, r)
	golden(t, "testdata/rejected-counts.txt", txt)
}
