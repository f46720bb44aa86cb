package state

import (
	"bytes"
	"strings"
	"testing"
)

// recordFrom makes a UserRecord from s: fields split at '|', known and
// custom attributes as name=value, so that the fuzzer reaches known
// names, unknown names, empty values and reordered names.
func recordFrom(s string) UserRecord {
	parts := strings.Split(s, "|")
	for len(parts) < 6 {
		parts = append(parts, "")
	}
	r := UserRecord{ID: parts[0], Email: parts[1], FirstName: parts[2], LastName: parts[3]}
	for _, kv := range strings.Split(parts[4], ",") {
		if name, value, ok := strings.Cut(kv, "="); ok {
			r.Known = append(r.Known, Attr{Name: name, Value: value})
		}
	}
	for _, kv := range strings.Split(parts[5], ",") {
		if name, value, ok := strings.Cut(kv, "="); ok {
			r.Custom = append(r.Custom, Attr{Name: name, Value: value})
		}
	}
	return r
}

// FuzzUserRecordEqualBinary: EqualBinary agrees with comparing the
// encoding's bytes, for the record's own encoding, another record's, and
// arbitrary bytes.
func FuzzUserRecordEqualBinary(f *testing.F) {
	f.Add("E1|a@x.com|Ann|Lee|job_title=Clerk,username=ann|badge=7", "E1|a@x.com|Ann|Lee|job_title=Clerk|badge=7", []byte{1, 2})
	f.Add("E1|a@x.com|Ann|Lee|username=ann,job_title=Clerk|", "E1|a@x.com|Ann|Lee|username=ann,job_title=Clerk|", []byte{})
	f.Add("E1|a@x.com|Ann|Lee|shoe=9|", "E1|a@x.com|Ann|Lee|shoe=8|", []byte("\x01\x02E1"))
	f.Fuzz(func(t *testing.T, a, b string, raw []byte) {
		r, o := recordFrom(a), recordFrom(b)
		enc := r.AppendBinary(nil)
		if !r.EqualBinary(enc) {
			t.Fatalf("EqualBinary(own encoding) = false for %+v", r)
		}
		for _, other := range [][]byte{o.AppendBinary(nil), raw, enc[:len(enc)-1], append(bytes.Clone(enc), 0)} {
			if got, want := r.EqualBinary(other), bytes.Equal(enc, other); got != want {
				t.Fatalf("EqualBinary(%q) = %v, bytes.Equal = %v, record %+v", other, got, want, r)
			}
		}
	})
}
