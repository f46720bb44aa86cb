package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
)

// TestAuditSinkFlushesAtClose checks that Close writes every buffered
// record (more than one batch's worth) and that Record never blocks, even
// after Close.
func TestAuditSinkFlushesAtClose(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.CreateOrg(state.Org{Name: "acme"})
	a := newAuditSink(db, slog.New(slog.DiscardHandler))
	n := auditFlushN*2 + 7
	t0 := time.Now()
	for i := range n {
		a.Record(sftpd.AuditRecord{Time: t0, Event: sftpd.EventUpload, Org: "acme", File: fmt.Sprint(i), Bytes: int64(i)})
	}
	a.Close()
	a.Record(sftpd.AuditRecord{Time: t0, Event: sftpd.EventRemove, Org: "acme"}) // dropped, must not block
	a.Close()
	recs, err := db.AuditRecords("acme", "", 0, state.OldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n || recs[0].File != "0" || recs[n-1].File != fmt.Sprint(n-1) || recs[n-1].Bytes != int64(n-1) {
		t.Fatalf("stored %d records; want %d in order", len(recs), n)
	}
}
