package schema

import (
	"bytes"
	"fmt"
	"testing"
	"unicode"
	"unicode/utf8"
)

// refEmailProblem is emailProblem as it was before checkEmail's byte
// classes: the reference checkEmail must agree with.
func refEmailProblem(b []byte) string {
	at := -1
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if ch >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(b[i:])
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				return "contains a space or an invisible character"
			}
			i += size - 1
			continue
		}
		switch {
		case ch == '@':
			if at >= 0 {
				return "contains more than one @ (is it two addresses?)"
			}
			at = i
		case ch <= ' ' || ch == 0x7f:
			return "contains a space or an invisible character"
		case badEmailByte[ch]:
			return fmt.Sprintf("contains the character \"%c\", which an address cannot have (is it two addresses, or a name with the address?)", ch)
		}
	}
	switch {
	case at < 0:
		return "has no @"
	case at == 0:
		return "has nothing before the @"
	case at == len(b)-1:
		return "has nothing after the @"
	}
	domain := b[at+1:]
	if bytes.IndexByte(domain, '.') < 0 {
		return msgf("has no dot in the part after the @ (%q); it should look like name@example.com", domain)
	}
	if domain[0] == '.' || domain[len(domain)-1] == '.' || bytes.Contains(domain, []byte("..")) {
		return msgf("has a misplaced dot in the part after the @ (%q)", domain)
	}
	return ""
}

var emailSeeds = []string{
	"a@x.com", "A@X.COM", "bjørn@example.com", "a..b@x.com", "a@x..com", "a@.x.com", "a@x.com.",
	"a@x", "@x.com", "a@", "ax.com", "a@b@c.com", "a b@x.com", "a\u00a0b@x.com", "a\u200bb@x.com",
	"a,b@x.com", "Name <a@x.com>", "a@x.c\x7fom", "\xff@x.com", "a@\xc3.com", "a.@x.com", ".a@x.com",
	"a@x.com\u2028", "É@x.com", "a@x.\u0085com", "",
}

func TestCheckEmailAgrees(t *testing.T) {
	for _, s := range emailSeeds {
		checkEmailAgrees(t, []byte(s))
	}
}

func checkEmailAgrees(t *testing.T, b []byte) {
	t.Helper()
	why, fold := checkEmail(b)
	if want := refEmailProblem(b); why != want {
		t.Errorf("checkEmail(%q) = %q; want %q", b, why, want)
	}
	if emailProblem(b) != why {
		t.Errorf("emailProblem(%q) differs from checkEmail", b)
	}
	needs := bytes.IndexFunc(b, func(r rune) bool { return r >= utf8.RuneSelf || r == utf8.RuneError || 'A' <= r && r <= 'Z' }) >= 0
	if why == "" && fold != needs {
		t.Errorf("checkEmail(%q) fold = %v; want %v", b, fold, needs)
	}
	if why == "" && !fold && !bytes.Equal(appendLower(nil, b), b) {
		t.Errorf("checkEmail(%q) says no folding, but the lower case differs", b)
	}
}

func FuzzCheckEmail(f *testing.F) {
	for _, s := range emailSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkEmailAgrees(t, b) })
}
