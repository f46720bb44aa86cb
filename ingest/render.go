package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// The snapshot stores each user and group as the exact JSON of SPEC §6, so
// the rendering here is deterministic: fixed field order, custom attributes
// sorted by name, empty values left out. Equal content gives equal bytes,
// which is how the differ compares.

// renderUser appends the directory user object of u to b.
func renderUser(b []byte, org string, u *schema.User, custom []schema.Attr) []byte {
	b = append(b, `{"object":"directory_user","id":`...)
	b = state.AppendJSONString(b, u.ID)
	b = append(b, `,"organization_id":`...)
	b = state.AppendJSONString(b, org)
	b = append(b, `,"email":`...)
	b = state.AppendJSONString(b, u.Email)
	b = append(b, `,"first_name":`...)
	b = state.AppendJSONString(b, u.FirstName)
	b = append(b, `,"last_name":`...)
	b = state.AppendJSONString(b, u.LastName)
	if u.Active {
		b = append(b, `,"state":"active"`...)
	} else {
		b = append(b, `,"state":"inactive"`...)
	}
	for k := schema.KnownField(0); k < schema.NumKnown; k++ {
		if v := u.Known[k]; v != "" {
			b = append(b, ',')
			b = state.AppendJSONString(b, k.Name())
			b = append(b, ':')
			b = state.AppendJSONString(b, v)
		}
	}
	b = append(b, `,"custom_attributes":`...)
	b = appendAttrs(b, custom, "")
	return append(b, '}')
}

// sortedAttrs returns the non-empty attributes sorted by name, reusing buf.
func sortedAttrs(buf, attrs []schema.Attr) []schema.Attr {
	buf = buf[:0]
	for _, a := range attrs {
		if a.Value != "" {
			buf = append(buf, a)
		}
	}
	if !slices.IsSortedFunc(buf, cmpAttr) {
		slices.SortFunc(buf, cmpAttr)
	}
	return buf
}

func cmpAttr(a, b schema.Attr) int { return strings.Compare(a.Name, b.Name) }

// appendAttrs appends a JSON object of sorted attributes, with first (when
// not empty) as a leading "description".
func appendAttrs(b []byte, attrs []schema.Attr, description string) []byte {
	b = append(b, '{')
	n := 0
	if description != "" {
		b = append(b, `"description":`...)
		b = state.AppendJSONString(b, description)
		n++
	}
	for _, a := range attrs {
		if n > 0 {
			b = append(b, ',')
		}
		b = state.AppendJSONString(b, a.Name)
		b = append(b, ':')
		b = state.AppendJSONString(b, a.Value)
		n++
	}
	return append(b, '}')
}

// renderGroup appends the directory group object to b.
func renderGroup(b []byte, org, id, name, description string, custom []schema.Attr) []byte {
	b = append(b, `{"object":"directory_group","id":`...)
	b = state.AppendJSONString(b, id)
	b = append(b, `,"organization_id":`...)
	b = state.AppendJSONString(b, org)
	b = append(b, `,"name":`...)
	b = state.AppendJSONString(b, name)
	b = append(b, `,"attributes":`...)
	b = appendAttrs(b, custom, description)
	return append(b, '}')
}

// DerivedGroupID is the id of a group that groups.csv gives no group_id:
// "grp_" and the first 16 bytes of SHA-256(organization, NUL, group name)
// in hex. It is stable: the same name in the same organization always gets
// the same id. SPEC §6.
func DerivedGroupID(org, name string) string {
	h := sha256.New()
	h.Write([]byte(org))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return "grp_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// userFieldOrder is the order of the comparable fields of a directory user.
var userFieldOrder = func() []string {
	f := []string{"email", "first_name", "last_name", "state"}
	for k := schema.KnownField(0); k < schema.NumKnown; k++ {
		f = append(f, k.Name())
	}
	return f
}()

// userFieldIndex is the index of each field name in userFieldOrder.
var userFieldIndex = func() map[string]int {
	m := make(map[string]int, len(userFieldOrder))
	for i, f := range userFieldOrder {
		m[f] = i
	}
	return m
}()

// previousAttributes returns the SPEC §6 previous_attributes object of a
// user whose stored JSON changed from old to cur: the old value of each
// changed field, null where the field did not exist, and changed custom
// attributes nested under custom_attributes. It returns nil when nothing
// visible changed.
func previousAttributes(old, cur []byte) ([]byte, error) {
	var o, c map[string]json.RawMessage
	if err := json.Unmarshal(old, &o); err != nil {
		return nil, fmt.Errorf("decode stored user: %w", err)
	}
	if err := json.Unmarshal(cur, &c); err != nil {
		return nil, fmt.Errorf("decode new user: %w", err)
	}
	b := []byte{'{'}
	n := 0
	sep := func() {
		if n > 0 {
			b = append(b, ',')
		}
		n++
	}
	for _, f := range userFieldOrder {
		ov, nv := o[f], c[f]
		if bytes.Equal(ov, nv) {
			continue
		}
		sep()
		b = state.AppendJSONString(b, f)
		b = append(b, ':')
		if ov == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, ov...)
		}
	}
	var oc, cc map[string]json.RawMessage
	if err := json.Unmarshal(o["custom_attributes"], &oc); err != nil && o["custom_attributes"] != nil {
		return nil, fmt.Errorf("decode stored custom attributes: %w", err)
	}
	if err := json.Unmarshal(c["custom_attributes"], &cc); err != nil {
		return nil, fmt.Errorf("decode new custom attributes: %w", err)
	}
	raw := func(m map[string]json.RawMessage) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = string(v)
		}
		return out
	}
	b, n = appendChangedAttrs(b, n, raw(oc), raw(cc), func(b []byte, v string) []byte { return append(b, v...) })
	if n == 0 {
		return nil, nil
	}
	return append(b, '}'), nil
}

// appendChangedAttrs appends to the previous_attributes object b, which
// has n members, "custom_attributes" with the old value (null when it was
// absent) of each custom attribute that differs between old and cur, in
// name order; appendValue writes a value. It returns b and the new n.
func appendChangedAttrs(b []byte, n int, old, cur map[string]string, appendValue func([]byte, string) []byte) ([]byte, int) {
	var names []string
	for k, v := range old {
		if nv, ok := cur[k]; !ok || nv != v {
			names = append(names, k)
		}
	}
	for k := range cur {
		if _, ok := old[k]; !ok {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return b, n
	}
	slices.Sort(names)
	if n > 0 {
		b = append(b, ',')
	}
	b = append(b, `"custom_attributes":{`...)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = state.AppendJSONString(b, k)
		b = append(b, ':')
		if v, ok := old[k]; ok {
			b = appendValue(b, v)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}'), n + 1
}

// withPrevious returns the user JSON rec with previous_attributes added as
// its last field.
func withPrevious(rec, prev []byte) []byte {
	out := make([]byte, 0, len(rec)+len(prev)+24)
	out = append(out, rec[:len(rec)-1]...)
	out = append(out, `,"previous_attributes":`...)
	out = append(out, prev...)
	return append(out, '}')
}

// membershipData returns the data of a membership event.
func membershipData(user, group []byte) []byte {
	out := make([]byte, 0, len(user)+len(group)+20)
	out = append(out, `{"user":`...)
	out = append(out, user...)
	out = append(out, `,"group":`...)
	out = append(out, group...)
	return append(out, '}')
}

// previousFromRecords is previousAttributes for two stored user records
// (state.UserRecord encodings), without rendering and parsing their JSON:
// the same bytes, at a fraction of the cost. A record stored as JSON goes
// through previousAttributes.
func previousFromRecords(org string, oldActive bool, old []byte, newActive bool, cur []byte) ([]byte, error) {
	o, errO := state.DecodeUserRecord(old)
	c, errC := state.DecodeUserRecord(cur)
	if errO != nil || errC != nil {
		return previousAttributes(state.AppendUserJSON(nil, org, oldActive, old), state.AppendUserJSON(nil, org, newActive, cur))
	}
	// The fields by their index in userFieldOrder; absent ones are unset.
	type field struct {
		v   string
		set bool
	}
	fields := func(r *state.UserRecord, active bool) (f [4 + schema.NumKnown]field) {
		f[0], f[1], f[2] = field{r.Email, true}, field{r.FirstName, true}, field{r.LastName, true}
		f[3] = field{"inactive", true}
		if active {
			f[3].v = "active"
		}
		for _, a := range r.Known {
			if i, ok := userFieldIndex[a.Name]; ok {
				f[i] = field{a.Value, true}
			}
		}
		return f
	}
	of, cf := fields(&o, oldActive), fields(&c, newActive)
	b := []byte{'{'}
	n := 0
	sep := func() {
		if n > 0 {
			b = append(b, ',')
		}
		n++
	}
	for i, f := range userFieldOrder {
		if of[i] == cf[i] {
			continue
		}
		sep()
		b = state.AppendJSONString(b, f)
		b = append(b, ':')
		if !of[i].set {
			b = append(b, "null"...)
		} else {
			b = state.AppendJSONString(b, of[i].v)
		}
	}
	attrs := func(as []state.Attr) map[string]string {
		m := make(map[string]string, len(as))
		for _, a := range as {
			m[a.Name] = a.Value
		}
		return m
	}
	b, n = appendChangedAttrs(b, n, attrs(o.Custom), attrs(c.Custom), state.AppendJSONString)
	if n == 0 {
		return nil, nil
	}
	return append(b, '}'), nil
}
