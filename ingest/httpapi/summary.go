package httpapi

import (
	"net/http"
	"time"

	"github.com/rosterd/rosterd/state"
)

// routeSummary registers an organization's state at a glance, an addition
// to SPEC §8's list:
//
//	GET /v1/organizations/{org}/summary
//
// It answers the snapshot's counts, the last completed upload, the last
// batch, the held batches (a held batch is one of the newest: a newer
// batch supersedes it), the number of keys and of usable setup links.
func (s *Server) routeSummary() {
	s.handle("GET /v1/organizations/{org}/summary", s.summary)
}

// Summary is the answer of GET /v1/organizations/{org}/summary.
type Summary struct {
	Object string               `json:"object"`
	ID     string               `json:"id"`
	Counts state.SnapshotCounts `json:"counts"`
	// LastUpload is the newest completed upload in the audit trail.
	LastUpload *AuditView `json:"last_upload"`
	LastBatch  *BatchView `json:"last_batch"`
	// Held lists the held batches, newest first.
	Held        []BatchView `json:"held_batches"`
	Keys        int         `json:"keys"`
	ActiveLinks int         `json:"active_setup_links"`
}

// summaryBatches is how many of the newest batches are searched for held
// ones.
const summaryBatches = 20

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	org, ok := s.orgExists(w, r)
	if !ok {
		return
	}
	sum := Summary{Object: "organization_summary", ID: org, Held: []BatchView{}}
	var err error
	if sum.Counts, err = s.cfg.DB.SnapshotCounts(org); err != nil {
		s.internal(w, r, err)
		return
	}
	ups, err := s.recentAudit(org, 1, "upload")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(ups) == 1 {
		v := auditView(ups[0])
		sum.LastUpload = &v
	}
	bs, err := s.cfg.DB.Batches(org, "", summaryBatches)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for i, b := range bs {
		v := BatchView{Object: "batch", Batch: b}
		if i == 0 {
			sum.LastBatch = &v
		}
		if b.Status == state.BatchHeld {
			sum.Held = append(sum.Held, v)
		}
	}
	keys, err := s.cfg.DB.Keys(org)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	sum.Keys = len(keys)
	links, err := s.cfg.DB.SetupLinks(org)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	now := time.Now()
	for _, l := range links {
		if setupLinkView(l, now).Status == "active" {
			sum.ActiveLinks++
		}
	}
	writeJSON(w, http.StatusOK, sum)
}
