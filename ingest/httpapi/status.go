package httpapi

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rosterd/rosterd/state"
)

// DaemonInfo describes the running daemon for GET /v1/status.
type DaemonInfo struct {
	Version   string     `json:"version"`
	StartedAt time.Time  `json:"started_at"`
	Listeners []Listener `json:"listeners"`
}

// Listener is one address the daemon accepts connections on.
type Listener struct {
	Name    string `json:"name"` // "sftp" or "http"
	Address string `json:"address"`
}

// Status is the answer of GET /v1/status: what `rosterd status` prints.
type Status struct {
	Object string `json:"object"` // "status"
	DaemonInfo
	Ready bool `json:"ready"`
	// Organizations is how many organizations there are.
	Organizations int `json:"organizations"`
	// Batches are the batches not finished yet, of every organization:
	// pending, processing and held, oldest first.
	Batches []BatchView `json:"batches"`
	// Webhooks are the endpoints with their delivery state and lag; absent
	// when delivery is not running.
	Webhooks []WebhookEndpoint `json:"webhooks"`
}

// routeStatus registers GET /v1/status, an addition to SPEC §8 behind
// `rosterd status` (SPEC §2).
func (s *Server) routeStatus() {
	s.handle("GET /v1/status", s.status)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := Status{Object: "status", Ready: s.cfg.Ready == nil || s.cfg.Ready(), Batches: []BatchView{}, Webhooks: []WebhookEndpoint{}}
	if s.cfg.Daemon != nil {
		st.DaemonInfo = s.cfg.Daemon()
	}
	if st.Listeners == nil {
		st.Listeners = []Listener{}
	}
	var err error
	if st.Organizations, err = s.cfg.DB.OrgCount(); err != nil {
		s.internal(w, r, err)
		return
	}
	open, err := s.cfg.DB.OpenBatches()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	slices.SortStableFunc(open, func(a, b state.Batch) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, b := range open {
		st.Batches = append(st.Batches, BatchView{Object: "batch", Batch: b})
	}
	if s.cfg.Deliverer != nil {
		eps, err := s.cfg.Deliverer.Endpoints()
		if err != nil {
			s.internal(w, r, err)
			return
		}
		for _, e := range eps {
			st.Webhooks = append(st.Webhooks, WebhookEndpoint{Object: "webhook_endpoint", EndpointStatus: e})
		}
	}
	writeJSON(w, http.StatusOK, st)
}
