package ingest

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// previousFromRecords must give, byte for byte, what previousAttributes
// gives for the JSON of the same records.
func TestPreviousFromRecords(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := []string{"", "a", "b", `"q"`, "<&>", "Bjørn", "x\u2028y", "tab\there"}
	val := func() string { return vals[r.IntN(len(vals))] }
	rec := func() (state.UserRecord, bool) {
		u := state.UserRecord{ID: "E1", Email: val(), FirstName: val(), LastName: val()}
		for k := schema.KnownField(0); k < schema.NumKnown; k++ {
			if r.IntN(3) == 0 {
				if v := val(); v != "" {
					u.Known = append(u.Known, state.Attr{Name: k.Name(), Value: v})
				}
			}
		}
		for _, n := range []string{"badge", "lang", "zone"} {
			if r.IntN(2) == 0 {
				if v := val(); v != "" {
					u.Custom = append(u.Custom, state.Attr{Name: n, Value: v})
				}
			}
		}
		return u, r.IntN(2) == 0
	}
	for i := range 5000 {
		o, oa := rec()
		c, ca := rec()
		if i%5 == 0 {
			c, ca = o, oa
		}
		ob, cb := o.AppendBinary(nil), c.AppendBinary(nil)
		want, err := previousAttributes(state.AppendUserJSON(nil, "acme", oa, ob), state.AppendUserJSON(nil, "acme", ca, cb))
		if err != nil {
			t.Fatal(err)
		}
		got, err := previousFromRecords("acme", oa, ob, ca, cb)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("previousFromRecords(%+v, %+v) = %s, %v; want %s", o, c, got, err, want)
		}
	}
	// A record stored as JSON goes the JSON way.
	old := []byte(`{"object":"directory_user","id":"E1","organization_id":"acme","email":"a","first_name":"b","last_name":"c","state":"active","custom_attributes":{}}`)
	cur := (&state.UserRecord{ID: "E1", Email: "z", FirstName: "b", LastName: "c"}).AppendBinary(nil)
	got, err := previousFromRecords("acme", true, old, true, cur)
	if want := `{"email":"a"}`; err != nil || string(got) != want {
		t.Errorf("previousFromRecords(JSON record) = %s, %v; want %s", got, err, want)
	}
}
