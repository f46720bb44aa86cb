package schema

import (
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
	why, _ := checkEmail(b)
	return why
}

// Byte classes of checkEmail.
const (
	ecPlain    = iota // nothing to note
	ecUpper           // A-Z
	ecAt              // @
	ecDot             // .
	ecInvis           // space, control characters, DEL
	ecBad             // badEmailByte
	ecNonASCII        // part of a multi-byte character
)

// emailClass is the class of each byte for checkEmail.
var emailClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = ecNonASCII
		case 'A' <= c && c <= 'Z':
			t[c] = ecUpper
		case c == '@':
			t[c] = ecAt
		case c == '.':
			t[c] = ecDot
		case c <= ' ' || c == 0x7f:
			t[c] = ecInvis
		case badEmailByte[c]:
			t[c] = ecBad
		}
	}
	return t
}()

// checkEmail is emailProblem in one pass over b that also tells whether b
// has upper-case or non-ASCII letters (fold: its lower-case form differs
// or may differ, see Checker.hashFold).
func checkEmail(b []byte) (why string, fold bool) {
	at := -1
	domainDot, doubleDot := false, false
	for i := 0; i < len(b); i++ {
		ch := b[i]
		switch emailClass[ch] {
		case ecPlain:
		case ecUpper:
			fold = true
		case ecDot:
			if at >= 0 {
				domainDot = true
				doubleDot = doubleDot || b[i-1] == '.'
			}
		case ecAt:
			if at >= 0 {
				return "contains more than one @ (is it two addresses?)", fold
			}
			at = i
		case ecInvis:
			return "contains a space or an invisible character", fold
		case ecBad:
			return fmt.Sprintf("contains the character \"%c\", which an address cannot have (is it two addresses, or a name with the address?)", ch), fold
		case ecNonASCII:
			fold = true
			r, size := utf8.DecodeRune(b[i:])
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				return "contains a space or an invisible character", fold
			}
			i += size - 1
		}
	}
	switch {
	case at < 0:
		return "has no @", fold
	case at == 0:
		return "has nothing before the @", fold
	case at == len(b)-1:
		return "has nothing after the @", fold
	}
	domain := b[at+1:]
	if !domainDot {
		return msgf("has no dot in the part after the @ (%q); it should look like name@example.com", domain), fold
	}
	if domain[0] == '.' || domain[len(domain)-1] == '.' || doubleDot {
		return msgf("has a misplaced dot in the part after the @ (%q)", domain), fold
	}
	return "", fold
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
