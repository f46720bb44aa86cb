package postgres

import (
	"testing"

	"github.com/rosterd/rosterd/state/storetest"
)

// TestContract runs the store contract suite against PostgreSQL; state
// runs the same suite against bbolt.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store { return openTest(t) },
		Emit: func(t *testing.T, s storetest.Store, org, batch string, evs []storetest.RawEvent) []string {
			t.Helper()
			recs := make([]eventRecord, len(evs))
			for i, e := range evs {
				recs[i] = eventRecord{Type: e.Type, Data: []byte(e.Data)}
			}
			ids, err := s.(*DB).appendEvents(org, batch, recs, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return ids
		},
	})
}
