package ingest

import (
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
	var oc, cc map[string]json.RawMessage
	if err := json.Unmarshal(o["custom_attributes"], &oc); err != nil && o["custom_attributes"] != nil {
		return nil, fmt.Errorf("decode stored custom attributes: %w", err)
	}
	if err := json.Unmarshal(c["custom_attributes"], &cc); err != nil {
		return nil, fmt.Errorf("decode new custom attributes: %w", err)
	}
	// Values stay raw JSON: equal JSON means an equal value.
	fields := func(m map[string]json.RawMessage) (f prevFields) {
		for i, name := range userFieldOrder {
			if v, ok := m[name]; ok {
				f[i] = prevField{string(v), true}
			}
		}
		return f
	}
	raw := func(m map[string]json.RawMessage) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = string(v)
		}
		return out
	}
	of, cf := fields(o), fields(c)
	return appendPrevious(&of, &cf, raw(oc), raw(cc), func(b []byte, v string) []byte { return append(b, v...) }), nil
}

// prevField is one field of a user for previous_attributes: its value,
// and whether the user has it.
type prevField struct {
	v   string
	set bool
}

// prevFields are a user's fields by their index in userFieldOrder.
type prevFields [4 + schema.NumKnown]prevField

// appendPrevious returns the previous_attributes object of a user whose
// fields changed from old to cur and whose custom attributes changed from
// oldCustom to curCustom: the old value of each changed field (null where
// it was absent), in userFieldOrder, then "custom_attributes" with the old
// value of each changed custom attribute, in name order. appendValue
// writes an old value. It returns nil when nothing changed.
func appendPrevious(old, cur *prevFields, oldCustom, curCustom map[string]string, appendValue func([]byte, string) []byte) []byte {
	b := []byte{'{'}
	n := 0
	sep := func() {
		if n > 0 {
			b = append(b, ',')
		}
		n++
	}
	for i, f := range userFieldOrder {
		if old[i] == cur[i] {
			continue
		}
		sep()
		b = state.AppendJSONString(b, f)
		b = append(b, ':')
		if old[i].set {
			b = appendValue(b, old[i].v)
		} else {
			b = append(b, "null"...)
		}
	}
	var names []string
	for k, v := range oldCustom {
		if nv, ok := curCustom[k]; !ok || nv != v {
			names = append(names, k)
		}
	}
	for k := range curCustom {
		if _, ok := oldCustom[k]; !ok {
			names = append(names, k)
		}
	}
	if len(names) > 0 {
		slices.Sort(names)
		sep()
		b = append(b, `"custom_attributes":{`...)
		for i, k := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = state.AppendJSONString(b, k)
			b = append(b, ':')
			if v, ok := oldCustom[k]; ok {
				b = appendValue(b, v)
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, '}')
	}
	if n == 0 {
		return nil
	}
	return append(b, '}')
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
	fields := func(r *state.UserRecord, active bool) (f prevFields) {
		f[0], f[1], f[2] = prevField{r.Email, true}, prevField{r.FirstName, true}, prevField{r.LastName, true}
		f[3] = prevField{"inactive", true}
		if active {
			f[3].v = "active"
		}
		for _, a := range r.Known {
			if i, ok := userFieldIndex[a.Name]; ok {
				f[i] = prevField{a.Value, true}
			}
		}
		return f
	}
	attrs := func(as []state.Attr) map[string]string {
		m := make(map[string]string, len(as))
		for _, a := range as {
			m[a.Name] = a.Value
		}
		return m
	}
	of, cf := fields(&o, oldActive), fields(&c, newActive)
	return appendPrevious(&of, &cf, attrs(o.Custom), attrs(c.Custom), state.AppendJSONString), nil
}
