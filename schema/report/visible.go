package report

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Visible returns s with every character a terminal or a viewer could act
// on written out as an escape, so that a value from an uploaded file can
// be echoed safely: `cat` of a report, `rosterd batch show` and `rosterd
// validate` never emit a control sequence taken from a CSV (SPEC §5).
//
//   - C0 controls and DEL: \n, \r, \t, else \xNN (ESC is \x1b, BEL \x07);
//   - C1 controls (U+0080 to U+009F, which some terminals obey like ESC
//     sequences) and the bidirectional overrides and isolates (U+061C,
//     U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069, which reorder
//     what is displayed): \uNNNN;
//   - a byte that is not valid UTF-8: \xNN.
//
// Everything else, backslashes included, is kept as it is: the text is
// for people, and an admin's DOMAIN\user should read as written. The JSON
// report keeps the exact value (see WriteJSON). Every renderer of this
// package passes echoed values through Visible; cmd/rosterd uses it where
// it prints values itself.
func Visible(s string) string {
	i := 0
	for i < len(s) {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++ // the common case: printable ASCII
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// needsEscape reports whether the rune r, decoded from n bytes, is shown
// escaped.
func needsEscape(r rune, n int) bool {
	return r < 0x20 || r == 0x7f || r == utf8.RuneError && n <= 1 || unsafeRune(r)
}

// unsafeRune reports whether r, beyond ASCII, is a C1 control or a
// bidirectional control.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// escapeJSONControls rewrites, in encoded JSON, the characters that
// encoding/json leaves raw but Visible escapes (DEL, C1 controls,
// bidirectional controls) as \u escapes. They can only occur inside JSON
// strings, so the document decodes to the same values; a terminal that
// shows the JSON report never obeys them. C0 controls are already escaped
// by encoding/json.
func escapeJSONControls(js []byte) []byte {
	clean := true
	for i := 0; i < len(js); {
		c := js[i]
		if c < utf8.RuneSelf && c != 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRune(js[i:])
		if r == 0x7f || unsafeRune(r) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return js
	}
	out := make([]byte, 0, len(js)+16)
	for i := 0; i < len(js); {
		r, n := utf8.DecodeRune(js[i:])
		if r == 0x7f || unsafeRune(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, js[i:i+n]...)
		}
		i += n
	}
	return out
}
