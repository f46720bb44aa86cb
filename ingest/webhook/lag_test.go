package webhook

import (
	"net/http"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// TestEndpointsLagPerOrganization: an endpoint's status lists, per
// organization with events pending, how many, how old the one being sent
// is, and its retries.
func TestEndpointsLagPerOrganization(t *testing.T) {
	db := openDB(t, "")
	mustOrg(t, db, "acme", "globex")
	rc := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return false
	})
	emit(t, db, "acme", 3, time.Time{})
	ep := rc.endpoint(t)
	ep.ID = "wh_test"
	d := newDeliverer(t, Config{DB: db, Endpoints: []Endpoint{ep}, Schedule: []time.Duration{time.Hour}})
	if err := db.SaveCursors(state.CursorUpdate{Endpoint: "wh_test", Org: "acme", Cursor: state.Cursor{After: ""}}); err != nil {
		t.Fatal(err)
	}
	run(t, d)
	var st EndpointStatus
	waitFor(t, "a retry scheduled", 10*time.Second, func() bool {
		eps, err := d.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		st = eps[0]
		return len(st.Lag) == 1 && st.Lag[0].Attempts == 1
	})
	l := st.Lag[0]
	if l.Org != "acme" || l.Pending != 3 || l.Seconds <= 0 || l.NextAttemptAt == nil || l.LastError == "" || st.Pending != 3 {
		t.Errorf("lag = %+v (pending %d); want acme with 3 pending, a positive lag and the retry", l, st.Pending)
	}
}
