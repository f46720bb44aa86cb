package main

import (
	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema"
)

// ingestConfig builds the ingest pipeline's Config from the daemon's
// configuration (written by the ingest engineer; the lead may fold it
// into serve.go).
func ingestConfig(cfg Config, d *daemonState) ingest.Config {
	return ingest.Config{
		DB:          d.db,
		OrgsRoot:    d.orgsRoot,
		ArchiveRoot: "", // data/archive, beside orgs/
		Defaults:    ingestDefaults(cfg),
		Limits: schema.Limits{
			MaxFileSize:  int64(cfg.Limits.MaxUploadSize),
			MaxColumns:   cfg.Limits.MaxColumns,
			MaxFieldSize: int(cfg.Limits.MaxFieldSize),
		},
		ReportsKept: cfg.Retention.Reports,
		ArchiveKeep: cfg.Retention.Archive.D(),
		Logger:      d.log,
		Registerer:  d.reg,
	}
}

// ingestDefaults are the organization defaults of the configuration; the
// part SIGHUP reloads.
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
