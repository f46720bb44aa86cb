package schema

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// emailProblem returns why b is not a usable email address, or "" when it
// is one. The check is practical, not RFC 5322: exactly one @, something
// before it, a domain with a dot after it, no white space, control
// characters or the punctuation that shows two addresses or a display name
// were put in the cell (, ; < > ( ) [ ] \ " :). Non-ASCII letters are
// allowed (internationalized addresses). It does not allocate on success.
func emailProblem(b []byte) string {
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

// badEmailByte marks the ASCII punctuation no address may hold.
var badEmailByte = func() (t [256]bool) {
	for _, c := range []byte(`,;<>()[]\":`) {
		t[c] = true
	}
	return t
}()

// appendLower appends b in lower case (simple Unicode case mapping) to dst.
func appendLower(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		ch := b[i]
		if ch < utf8.RuneSelf {
			if 'A' <= ch && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			dst = append(dst, ch)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, ch)
		} else {
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		i += size
	}
	return dst
}
