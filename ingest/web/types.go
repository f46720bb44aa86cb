package web

import (
	"encoding/json"
	"time"

	"github.com/rosterd/rosterd/schema/report"
)

// The API's answers, as far as the pages read them (httpapi's types, seen
// from a client).

type orgJSON struct {
	ID        string          `json:"id"`
	Settings  json.RawMessage `json:"settings"`
	CreatedAt time.Time       `json:"created_at"`
}

type keyJSON struct {
	Fingerprint string     `json:"fingerprint"`
	Type        string     `json:"type"`
	Comment     string     `json:"comment"`
	CreatedAt   time.Time  `json:"created_at"`
	AddedBy     string     `json:"added_by"`
	SetupLink   string     `json:"setup_link"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

type fileJSON struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Rows   int    `json:"rows"`
}

type batchJSON struct {
	ID           string          `json:"id"`
	Status       string          `json:"status"`
	CreatedAt    time.Time       `json:"created_at"`
	FinishedAt   *time.Time      `json:"finished_at"`
	Files        []fileJSON      `json:"files"`
	Counts       report.Counts   `json:"counts"`
	Changes      report.Changes  `json:"changes"`
	Errors       int             `json:"errors"`
	Warnings     int             `json:"warnings"`
	Approved     bool            `json:"approved"`
	SupersededBy string          `json:"superseded_by"`
	Reason       string          `json:"reason"`
	Report       json.RawMessage `json:"report"`
}

type linkJSON struct {
	ID                    string     `json:"id"`
	OrganizationID        string     `json:"organization_id"`
	URL                   string     `json:"url"`
	Status                string     `json:"status"`
	CreateOrganization    bool       `json:"create_organization"`
	OrganizationCreatedAt *time.Time `json:"organization_created_at"`
	CreatedAt             time.Time  `json:"created_at"`
	ExpiresAt             time.Time  `json:"expires_at"`
	RevokedAt             *time.Time `json:"revoked_at"`
	LastUsedAt            *time.Time `json:"last_used_at"`
	Uses                  int        `json:"uses"`
}

type auditJSON struct {
	ID         string  `json:"id"`
	Time       string  `json:"time"`
	Event      string  `json:"event"`
	RemoteAddr string  `json:"remote_addr"`
	KeyFP      string  `json:"key_fingerprint"`
	Session    string  `json:"session"`
	File       string  `json:"file"`
	Target     string  `json:"target"`
	Bytes      *int64  `json:"bytes"`
	SHA256     string  `json:"sha256"`
	DurationMS float64 `json:"duration_ms"`
	Reason     string  `json:"reason"`
	SetupLink  string  `json:"setup_link"`
}

type setupJSON struct {
	Link         linkJSON    `json:"link"`
	Organization orgJSON     `json:"organization"`
	Keys         []keyJSON   `json:"keys"`
	AllKeys      bool        `json:"all_keys"`
	Batches      []batchJSON `json:"batches"`
	Uploads      []auditJSON `json:"uploads"`
}

type summaryJSON struct {
	ID     string `json:"id"`
	Counts struct {
		Users       int `json:"users"`
		Active      int `json:"active"`
		Groups      int `json:"groups"`
		Memberships int `json:"memberships"`
	} `json:"counts"`
	LastUpload  *auditJSON  `json:"last_upload"`
	LastBatch   *batchJSON  `json:"last_batch"`
	Held        []batchJSON `json:"held_batches"`
	Keys        int         `json:"keys"`
	ActiveLinks int         `json:"active_setup_links"`
}

type listJSON[T any] struct {
	Data         []T `json:"data"`
	ListMetadata struct {
		After *string `json:"after"`
	} `json:"list_metadata"`
}

type endpointJSON struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Organizations  []string   `json:"organizations"`
	Signature      string     `json:"signature"`
	Enabled        bool       `json:"enabled"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason string     `json:"disabled_reason"`
	Failed         int        `json:"failed"`
	Pending        int        `json:"pending"`
	Lag            []struct {
		Org           string     `json:"organization_id"`
		Pending       int        `json:"pending"`
		Seconds       float64    `json:"lag_seconds"`
		Attempts      int        `json:"attempts"`
		NextAttemptAt *time.Time `json:"next_attempt_at"`
		LastError     string     `json:"last_error"`
	} `json:"lag"`
}

type failedJSON struct {
	Endpoint   string    `json:"endpoint"`
	EventID    string    `json:"event_id"`
	Event      string    `json:"event"`
	Org        string    `json:"organization_id"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status"`
	LastError  string    `json:"last_error"`
	FailedAt   time.Time `json:"failed_at"`
}

type redeliveryJSON struct {
	Data []struct {
		Endpoint  string `json:"endpoint"`
		Delivered bool   `json:"delivered"`
		Status    int    `json:"status"`
		Error     string `json:"error"`
	} `json:"data"`
}
