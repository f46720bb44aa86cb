package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// refAttrs is decodeAttrs by encoding/json and maps: what scanFlat must
// match.
func refAttrs(known, custom string) (state.UserRecord, error) {
	var r state.UserRecord
	var km, cm map[string]string
	if err := json.Unmarshal([]byte(known), &km); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(custom), &cm); err != nil {
		return r, err
	}
	for _, n := range knownNames {
		if v, ok := km[n]; ok {
			r.Known = append(r.Known, state.Attr{Name: n, Value: v})
			delete(km, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(km)) {
		r.Known = append(r.Known, state.Attr{Name: n, Value: km[n]})
	}
	for _, n := range slices.Sorted(maps.Keys(cm)) {
		r.Custom = append(r.Custom, state.Attr{Name: n, Value: cm[n]})
	}
	return r, nil
}

// TestDecodeAttrs: users' known and custom attributes as PostgreSQL
// prints their jsonb (escapes, non-ASCII, names state does not know,
// empty objects) decode as encoding/json decodes them.
func TestDecodeAttrs(t *testing.T) {
	db := openTest(t)
	rng := rand.New(rand.NewPCG(1, 2))
	values := []string{"", "plain", "é ü 李", `quote " inside`, `back\slash`, "tab\tnew\nline", "\u2028", "\x01ctl", "emoji 🎉", " spaced ", "{not: json}"}
	names := append(slices.Clone(knownNames), "zzz_unknown", "a", "Cost", "badge", "é")
	for i := range 300 {
		km, cm := map[string]string{}, map[string]string{}
		for range rng.IntN(6) {
			km[names[rng.IntN(len(names))]] = values[rng.IntN(len(values))]
		}
		for range rng.IntN(4) {
			cm[fmt.Sprintf("c%d%s", rng.IntN(20), values[rng.IntN(3)])] = values[rng.IntN(len(values))]
		}
		kj, _ := json.Marshal(km)
		cj, _ := json.Marshal(cm)
		var known, custom string
		if err := db.pool.QueryRow(context.Background(), "SELECT $1::jsonb::text, $2::jsonb::text", string(kj), string(cj)).Scan(&known, &custom); err != nil {
			t.Fatal(err)
		}
		want, err := refAttrs(known, custom)
		if err != nil {
			t.Fatal(err)
		}
		var got state.UserRecord
		if err := decodeAttrs(&got, known, custom); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("case %d: %s %s (-want +got):\n%s", i, known, custom, d)
		}
	}
	for _, bad := range []string{`{"a": 1}`, `{"a": "b"`, `["a"]`, `{"a" "b"}`, `{"a": "b",}`} {
		var r state.UserRecord
		if err := decodeAttrs(&r, bad, "{}"); err == nil {
			t.Errorf("decodeAttrs(%s) = %+v; want an error", bad, r)
		}
	}
}
