package state

import (
	"encoding/binary"
	"errors"
)

// UserRecord is a directory user in the snapshot's compact encoding: the
// fields of SPEC §6 without the JSON around them. Its JSON is rendered on
// read (AppendUserJSON), byte for byte what ingest rendered when the
// snapshot stored JSON: fixed field order, custom attributes sorted by
// name, empty values left out.
type UserRecord struct {
	ID, Email, FirstName, LastName string
	// Known are the non-empty known optional columns, in the order the
	// JSON shows them.
	Known []Attr
	// Custom are the non-empty custom attributes, sorted by name.
	Custom []Attr
}

// Attr is one named value of a UserRecord.
type Attr struct{ Name, Value string }

// userRecVersion starts an encoded UserRecord (a JSON record starts with
// '{').
const userRecVersion byte = 1

// knownNames are the known optional columns of SPEC §4; a name of this
// list is stored as one byte.
var knownNames = [...]string{
	"username", "display_name", "job_title", "employee_type", "employment_start_date",
	"department_name", "division_name", "cost_center_name", "manager_id", "manager_name",
	"manager_email", "work_address_street", "work_address_locality", "work_address_region",
	"work_address_postal_code", "work_address_country",
}

// knownNameBytes are knownNames as byte slices, which readers must not
// change.
var knownNameBytes = func() [][]byte {
	b := make([][]byte, len(knownNames))
	for i, n := range knownNames {
		b[i] = []byte(n)
	}
	return b
}()

var knownCode = func() map[string]byte {
	m := map[string]byte{}
	for i, n := range knownNames {
		m[n] = byte(i + 1)
	}
	return m
}()

func appendLV(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBinary appends the compact encoding of r to b. Equal records give
// equal bytes.
func (r *UserRecord) AppendBinary(b []byte) []byte {
	b = append(b, userRecVersion)
	b = appendLV(b, r.ID)
	b = appendLV(b, r.Email)
	b = appendLV(b, r.FirstName)
	b = appendLV(b, r.LastName)
	b = binary.AppendUvarint(b, uint64(len(r.Known)))
	next := 0 // Known is usually in knownNames order: look there first
	for _, a := range r.Known {
		if c := knownCodeOf(a.Name, &next); c != 0 {
			b = append(b, c)
		} else {
			b = append(b, 0)
			b = appendLV(b, a.Name)
		}
		b = appendLV(b, a.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Custom)))
	for _, a := range r.Custom {
		b = appendLV(b, a.Name)
		b = appendLV(b, a.Value)
	}
	return b
}

// knownCodeOf returns the one-byte code of a known column name, or 0.
// *next is where the search starts (names usually come in knownNames
// order); it moves past a name found there.
func knownCodeOf(name string, next *int) byte {
	for i := *next; i < len(knownNames); i++ {
		if knownNames[i] == name {
			*next = i + 1
			return byte(i + 1)
		}
	}
	return knownCode[name]
}

// NumKnown is the number of known optional columns, the length of the
// array EqualFields takes.
const NumKnown = len(knownNames)

// EqualFields reports whether b is the encoding of the UserRecord with
// these fields: known[i] is the value of the i-th known column of SPEC §4
// in their order ("" = absent), custom the custom attributes sorted by
// name with no empty value. It answers without building the record or
// its encoding; ingest compares every row of a users file with it.
func EqualFields(b []byte, id, email, first, last string, known *[NumKnown]string, custom []Attr) bool {
	if len(b) == 0 || b[0] != userRecVersion {
		return false
	}
	m := matcher{b: b[1:]}
	if !m.lv(id) || !m.lv(email) || !m.lv(first) || !m.lv(last) {
		return false
	}
	n := 0
	for i := range known {
		if known[i] != "" {
			n++
		}
	}
	if !m.uvarint(n) {
		return false
	}
	for i := range known {
		if known[i] == "" {
			continue
		}
		if len(m.b) == 0 || m.b[0] != byte(i+1) {
			return false
		}
		m.b = m.b[1:]
		if !m.lv(known[i]) {
			return false
		}
	}
	if !m.uvarint(len(custom)) {
		return false
	}
	for _, a := range custom {
		if !m.lv(a.Name) || !m.lv(a.Value) {
			return false
		}
	}
	return len(m.b) == 0
}

// matcher walks an encoded record, comparing as it goes.
type matcher struct{ b []byte }

func (m *matcher) uvarint(n int) bool {
	if n < 0x80 { // one byte, as nearly every length is
		if len(m.b) == 0 || m.b[0] != byte(n) {
			return false
		}
		m.b = m.b[1:]
		return true
	}
	v, w := binary.Uvarint(m.b)
	if w <= 0 || v != uint64(n) {
		return false
	}
	m.b = m.b[w:]
	return true
}

func (m *matcher) lv(s string) bool {
	if !m.uvarint(len(s)) || len(m.b) < len(s) || string(m.b[:len(s)]) != s {
		return false
	}
	m.b = m.b[len(s):]
	return true
}

var errBadRecord = errors.New("malformed user record")

type recReader struct {
	b   []byte
	err error
}

func (r *recReader) uvarint() int {
	n, w := binary.Uvarint(r.b)
	if w <= 0 || n > uint64(len(r.b)) {
		r.err = errBadRecord
		r.b = nil
		return 0
	}
	r.b = r.b[w:]
	return int(n)
}

func (r *recReader) str() []byte {
	n := r.uvarint()
	if r.err != nil || n > len(r.b) {
		r.err = errBadRecord
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *recReader) byte1() byte {
	if len(r.b) == 0 {
		r.err = errBadRecord
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// DecodeUserRecord decodes an encoded UserRecord.
func DecodeUserRecord(b []byte) (UserRecord, error) {
	var u UserRecord
	err := walkUserRecord(b, func(part int, name, value []byte) {
		switch part {
		case partID:
			u.ID = string(value)
		case partEmail:
			u.Email = string(value)
		case partFirst:
			u.FirstName = string(value)
		case partLast:
			u.LastName = string(value)
		case partKnown:
			u.Known = append(u.Known, Attr{string(name), string(value)})
		case partCustom:
			u.Custom = append(u.Custom, Attr{string(name), string(value)})
		}
	})
	return u, err
}

const (
	partID = iota
	partEmail
	partFirst
	partLast
	partKnownEnd // between the known fields and the custom attributes
	partKnown
	partCustom
)

func walkUserRecord(b []byte, fn func(part int, name, value []byte)) error {
	if len(b) == 0 || b[0] != userRecVersion {
		return errBadRecord
	}
	r := &recReader{b: b[1:]}
	for p := partID; p <= partLast; p++ {
		fn(p, nil, r.str())
	}
	n := r.uvarint()
	for i := 0; i < n && r.err == nil; i++ {
		var name []byte
		if c := r.byte1(); c == 0 {
			name = r.str()
		} else if int(c) <= len(knownNames) {
			name = knownNameBytes[c-1]
		} else {
			r.err = errBadRecord
		}
		v := r.str()
		if r.err == nil {
			fn(partKnown, name, v)
		}
	}
	fn(partKnownEnd, nil, nil)
	n = r.uvarint()
	for i := 0; i < n && r.err == nil; i++ {
		name, v := r.str(), r.str()
		if r.err == nil {
			fn(partCustom, name, v)
		}
	}
	return r.err
}

// AppendUserJSON appends the directory user JSON (SPEC §6) of a stored
// record to b: rec is an encoded UserRecord, or JSON, which is copied.
func AppendUserJSON(b []byte, org string, active bool, rec []byte) []byte {
	if len(rec) == 0 || rec[0] != userRecVersion {
		return append(b, rec...)
	}
	start := len(b)
	nCustom := 0
	err := walkUserRecord(rec, func(part int, name, value []byte) {
		switch part {
		case partID:
			b = append(b, `{"object":"directory_user","id":`...)
			b = AppendJSONString(b, value)
			b = append(b, `,"organization_id":`...)
			b = AppendJSONString(b, org)
		case partEmail:
			b = append(b, `,"email":`...)
			b = AppendJSONString(b, value)
		case partFirst:
			b = append(b, `,"first_name":`...)
			b = AppendJSONString(b, value)
		case partLast:
			b = append(b, `,"last_name":`...)
			b = AppendJSONString(b, value)
			if active {
				b = append(b, `,"state":"active"`...)
			} else {
				b = append(b, `,"state":"inactive"`...)
			}
		case partKnown:
			b = append(b, ',')
			b = AppendJSONString(b, name)
			b = append(b, ':')
			b = AppendJSONString(b, value)
		case partKnownEnd:
			b = append(b, `,"custom_attributes":{`...)
		case partCustom:
			if nCustom > 0 {
				b = append(b, ',')
			}
			nCustom++
			b = AppendJSONString(b, name)
			b = append(b, ':')
			b = AppendJSONString(b, value)
		}
	})
	if err != nil {
		return append(b[:start], `null`...)
	}
	return append(b, '}', '}')
}

// appendUserJSON renders a stored user value (state byte + record).
func appendUserJSON(b []byte, org string, v []byte) []byte {
	return AppendUserJSON(b, org, v[0] == 'a', v[1:])
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s, valid UTF-8, as a JSON string exactly as
// encoding/json writes it: <, > and & and the line separators U+2028 and
// U+2029 are escaped too. Every JSON that state and ingest render by hand
// goes through it, so the bytes are the same whichever way a record or an
// event is encoded.
func AppendJSONString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			start = i + 1
			continue
		}
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9) {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xf])
			i += 2
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
