-- 0003_snapshot_version: what the apply needs beyond 0002.
--
-- snapshot_counts.version names the state of an organization's snapshot:
-- every apply that changes it draws a new value from the sequence, and so
-- does every new row (an import, an organization's first apply). An
-- instance keeps a local copy of the snapshots it applies to (its
-- replica, state/postgres/replica.go) and knows the copy is current when
-- the version it loaded or wrote is still the row's.
CREATE SEQUENCE rosterd.snapshot_version;

ALTER TABLE rosterd.snapshot_counts
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('rosterd.snapshot_version');

-- users and memberships hold millions of rows an apply COPYs in: their
-- foreign key to organizations cost a lookup per row. DeleteOrg deletes
-- them itself (state/postgres/orgs.go), after the organization's row,
-- whose cascade to batch_heads waits for an apply in flight.
ALTER TABLE rosterd.users DROP CONSTRAINT users_org_fkey;
ALTER TABLE rosterd.memberships DROP CONSTRAINT memberships_org_fkey;
