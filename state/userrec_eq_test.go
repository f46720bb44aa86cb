package state

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/schema"
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

// fieldsFrom makes EqualFields' arguments from s (as recordFrom reads it:
// known attributes as index=value, indexes taken modulo NumKnown) and the
// UserRecord they stand for.
func fieldsFrom(s string) (known [NumKnown]string, custom []Attr, r UserRecord) {
	r = recordFrom(s)
	for _, a := range r.Known {
		if a.Name != "" {
			known[int(a.Name[0])%NumKnown] = a.Value
		}
	}
	r.Known = r.Known[:0]
	for i, v := range known {
		if v != "" {
			r.Known = append(r.Known, Attr{Name: knownNames[i], Value: v})
		}
	}
	seen := map[string]bool{}
	for _, a := range r.Custom {
		if a.Value != "" && !seen[a.Name] {
			seen[a.Name] = true
			custom = append(custom, a)
		}
	}
	slices.SortFunc(custom, func(a, b Attr) int { return strings.Compare(a.Name, b.Name) })
	r.Custom = custom
	return known, custom, r
}

// FuzzEqualFields: EqualFields agrees with comparing the encoding of the
// record the fields make.
func FuzzEqualFields(f *testing.F) {
	f.Add("E1|a@x.com|Ann|Lee|a=Clerk,b=ann|badge=7", "E1|a@x.com|Ann|Lee|a=Clerk|badge=7", []byte{1, 2})
	f.Add("E1|a@x.com|Ann|Lee|c=x|z=1,a=2,m=", "E1|a@x.com|Ann|Lee|c=x|a=2,z=1", []byte{})
	f.Add("E1|"+strings.Repeat("x", 200)+"|Ann|Lee||", "E1|a|Ann|Lee||", []byte("\x01\x02E1"))
	f.Fuzz(func(t *testing.T, a, b string, raw []byte) {
		known, custom, r := fieldsFrom(a)
		_, _, o := fieldsFrom(b)
		enc := r.AppendBinary(nil)
		for _, other := range [][]byte{enc, o.AppendBinary(nil), raw, enc[:len(enc)-1], append(bytes.Clone(enc), 0)} {
			got := EqualFields(other, r.ID, r.Email, r.FirstName, r.LastName, &known, custom)
			if want := bytes.Equal(enc, other); got != want {
				t.Fatalf("EqualFields(%q) = %v, bytes.Equal = %v, record %+v", other, got, want, r)
			}
		}
	})
}

func TestKnownNamesAreSchemas(t *testing.T) {
	if len(knownNames) != NumKnown || NumKnown != int(schema.NumKnown) {
		t.Fatalf("state knows %d names (NumKnown %d), schema %d", len(knownNames), NumKnown, schema.NumKnown)
	}
	for i, n := range knownNames {
		if s := schema.KnownField(i).Name(); s != n {
			t.Errorf("known column %d: state %q, schema %q", i, n, s)
		}
	}
}
