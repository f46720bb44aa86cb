package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/sftpd"
)

// This file turns the daemon's Config into each component's Config. It
// holds no rules of its own: defaults and validation live in config.go.

func sftpLimits(cfg Config) sftpd.Limits {
	l := cfg.Limits
	return sftpd.Limits{
		MaxUploadSize: int64(l.MaxUploadSize),
		MaxSessions:   l.MaxSessions,
		IdleTimeout:   l.IdleTimeout.D(),
		BanFailures:   l.BanFailures,
		BanWindow:     l.BanWindow.D(),
		BanDuration:   l.BanDuration.D(),

		MaxStartups:           l.MaxStartups,
		MaxStartupsPerAddress: l.MaxStartupsPerAddress,
		LoginGraceTime:        l.LoginGraceTime.D(),
		KeyRecheck:            l.KeyRecheckInterval.D(),
	}
}

func schemaLimits(cfg Config) schema.Limits {
	return schema.Limits{
		MaxFileSize:  int64(cfg.Limits.MaxUploadSize),
		MaxColumns:   cfg.Limits.MaxColumns,
		MaxFieldSize: int(cfg.Limits.MaxFieldSize),
	}
}

func ingestConfig(cfg Config, d *daemonState) ingest.Config {
	keep := cfg.Retention.Archive.D()
	if keep == 0 {
		keep = -1 // "0s": forever
	}
	minFree, minPercent, quota := spaceLimits(cfg)
	return ingest.Config{
		DB:             d.bolt,
		OrgsRoot:       d.orgsRoot,
		Defaults:       ingestDefaults(cfg),
		Limits:         schemaLimits(cfg),
		ReportsKept:    cfg.Retention.Reports,
		ArchiveKeep:    keep,
		ArchiveBatches: cfg.Retention.ArchiveBatches,
		DataDir:        cfg.Data,
		MinFree:        minFree,
		MinFreePercent: minPercent,
		StorageQuota:   quota,
		Logger:         d.log,
		Registerer:     d.reg,

		MaxCompressionRatio: cfg.Limits.MaxCompressionRatio,
	}
}

// spaceLimits are the disk-space limits of [limits] as ingest takes them:
// there, 0 is the default and a negative value none.
func spaceLimits(cfg Config) (minFree int64, minPercent float64, quota int64) {
	l := cfg.Limits
	minFree, minPercent, quota = int64(l.MinFreeSpace), l.MinFreePercent, int64(l.StorageQuota)
	if minFree == 0 {
		minFree = -1
	}
	if minPercent == 0 {
		minPercent = -1
	}
	return minFree, minPercent, quota
}

// ingestDefaults are the organization settings of [defaults] and the
// settle window; SIGHUP reloads them.
func ingestDefaults(cfg Config) ingest.Defaults {
	dc := cfg.Defaults
	return ingest.Defaults{
		Settle:                 cfg.Settle.D(),
		DeleteThresholdPercent: dc.DeleteThresholdPercent,
		DeleteThresholdCount:   dc.DeleteThresholdCount,
		InactiveUsers:          dc.InactiveUsers,
		UsersPatterns:          dc.UsersPatterns,
		UserGroupsPatterns:     dc.UserGroupsPatterns,
		GroupsPatterns:         dc.GroupsPatterns,
	}
}

// webhookEndpoints turns [[webhook]] tables (and --webhook-url) into
// endpoints; an error names the key.
func webhookEndpoints(cfg Config) ([]webhook.Endpoint, error) {
	eps := make([]webhook.Endpoint, 0, len(cfg.Webhooks))
	for i, w := range cfg.Webhooks {
		s, err := webhook.ParseSecret(w.Secret)
		if err != nil {
			return nil, fmt.Errorf("webhook[%d].secret: %w", i, err)
		}
		eps = append(eps, webhook.Endpoint{
			ID:            w.ID,
			URL:           w.URL,
			Secret:        s,
			Organizations: w.Organizations,
			WorkOS:        strings.EqualFold(w.Signature, "workos"),
		})
	}
	return eps, nil
}

func deliveryConfig(cfg Config, d *daemonState) (webhook.Config, error) {
	eps, err := webhookEndpoints(cfg)
	if err != nil {
		return webhook.Config{}, err
	}
	wc := webhook.Config{
		DB:         d.db,
		Endpoints:  eps,
		Timeout:    cfg.Delivery.Timeout.D(),
		Retention:  cfg.Retention.Events.D(),
		LeaseTTL:   cfg.LeaseTTL.D(),
		Logger:     d.log,
		Registerer: d.reg,
	}
	for _, s := range cfg.Delivery.Schedule {
		wc.Schedule = append(wc.Schedule, s.D())
	}
	return wc, nil
}

func newDeliverer(cfg Config, d *daemonState) (*webhook.Deliverer, error) {
	wc, err := deliveryConfig(cfg, d)
	if err != nil {
		return nil, err
	}
	return webhook.New(wc)
}

// reloadDelivery applies reloaded endpoints, timeout, schedule and event
// retention; a bad endpoint keeps the running ones.
func (d *daemonState) reloadDelivery(cfg Config) {
	wc, err := deliveryConfig(cfg, d)
	if err == nil {
		err = d.deliverer.Reconfigure(wc)
	}
	if err != nil {
		d.log.Error("reload: webhook settings unchanged", "err", err)
	}
}

// needsRestart lists, in a stable order, the keys whose new values take
// effect only at the next start.
func needsRestart(old, cur Config) []string {
	var keys []string
	for _, k := range []struct {
		key     string
		changed bool
	}{
		{"data", cur.Data != old.Data},
		{"store", cur.Store != old.Store},
		{"instance", cur.Instance != old.Instance},
		{"lease_ttl", cur.LeaseTTL != old.LeaseTTL},
		{"sftp_addr", cur.SFTPAddr != old.SFTPAddr},
		{"http_addr", cur.HTTPAddr != old.HTTPAddr},
		{"log_format", cur.LogFormat != old.LogFormat},
		{"api_token", cur.APIToken != old.APIToken},
		{"allow_sha1_rsa", cur.AllowSHA1RSA != old.AllowSHA1RSA},
		{"retention.reports", cur.Retention.Reports != old.Retention.Reports},
		{"retention.archive", cur.Retention.Archive != old.Retention.Archive},
		{"retention.archive_batches", cur.Retention.ArchiveBatches != old.Retention.ArchiveBatches},
		{"http.max_connections", cur.HTTP.MaxConnections != old.HTTP.MaxConnections},
		{"http.read_header_timeout", cur.HTTP.ReadHeaderTimeout != old.HTTP.ReadHeaderTimeout},
		{"http.read_timeout", cur.HTTP.ReadTimeout != old.HTTP.ReadTimeout},
		{"http.write_timeout", cur.HTTP.WriteTimeout != old.HTTP.WriteTimeout},
		{"http.idle_timeout", cur.HTTP.IdleTimeout != old.HTTP.IdleTimeout},
		{"limits.max_compression_ratio", cur.Limits.MaxCompressionRatio != old.Limits.MaxCompressionRatio},
		{"tls_cert", cur.TLSCert != old.TLSCert},
		{"tls_key", cur.TLSKey != old.TLSKey},
		{"console.public_url", cur.Console.PublicURL != old.Console.PublicURL},
		{"console.public_sftp_addr", cur.Console.PublicSFTPAddr != old.Console.PublicSFTPAddr},
		{"console.session_timeout", cur.Console.SessionTimeout != old.Console.SessionTimeout},
		{"operator.name", !slices.EqualFunc(cur.Operators, old.Operators, func(a, b OperatorConfig) bool { return a.Name == b.Name })},
		{"operator.password_hash", !slices.EqualFunc(cur.Operators, old.Operators, func(a, b OperatorConfig) bool { return a.PasswordHash == b.PasswordHash })},
	} {
		if k.changed {
			keys = append(keys, k.key)
		}
	}
	return keys
}
