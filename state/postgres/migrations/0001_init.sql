-- 0001_init: every piece of rosterd's state, and the stable views.
--
-- Everything lives in schema rosterd. The tables are rosterd's own and
-- change with migrations; the views directory_users, directory_groups,
-- directory_group_members and events are the stable interface an
-- application may query or replicate (docs/postgres-design.md).
--
-- Keys that rosterd pages through or compares (names, ids, event ids,
-- cursors) are COLLATE "C": byte order, as bbolt's keys, whatever the
-- database's default collation. Times are timestamptz (microseconds).

-- Organizations, their keys and settings (state/orgs.go, keys.go).
CREATE TABLE rosterd.organizations (
    name       text COLLATE "C" PRIMARY KEY,
    settings   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL
);

CREATE TABLE rosterd.keys (
    org         text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    fingerprint text COLLATE "C" NOT NULL,
    type        text NOT NULL,
    comment     text NOT NULL,
    public_key  text NOT NULL,
    created_at  timestamptz NOT NULL,
    added_by    text NOT NULL DEFAULT '',
    setup_link  text NOT NULL DEFAULT '',
    PRIMARY KEY (org, fingerprint)
);

-- Setup links (state/setuplinks.go). No foreign key: a link may create
-- its organization at its first use.
CREATE TABLE rosterd.setup_links (
    token_sha256   text COLLATE "C" PRIMARY KEY,
    id             text COLLATE "C" NOT NULL,
    org            text COLLATE "C" NOT NULL,
    create_org     boolean NOT NULL,
    org_created_at timestamptz,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    last_used_at   timestamptz,
    uses           integer NOT NULL DEFAULT 0
);
CREATE INDEX setup_links_org ON rosterd.setup_links (org);

-- The audit trail (state/audit.go). audit_heads holds each organization's
-- record count and the last id's time and sequence; appends lock its row,
-- so ids of one organization are drawn in commit order.
CREATE TABLE rosterd.audit_heads (
    org     text COLLATE "C" PRIMARY KEY REFERENCES rosterd.organizations ON DELETE CASCADE,
    seq     bigint NOT NULL,
    last_ns bigint NOT NULL,
    count   bigint NOT NULL
);

CREATE TABLE rosterd.audit (
    org         text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    id          text COLLATE "C" NOT NULL,
    time        timestamptz NOT NULL,
    event       text NOT NULL,
    remote_addr text NOT NULL DEFAULT '',
    key_fp      text NOT NULL DEFAULT '',
    session     text NOT NULL DEFAULT '',
    file        text NOT NULL DEFAULT '',
    target      text NOT NULL DEFAULT '',
    bytes       bigint NOT NULL DEFAULT 0,
    sha256      text NOT NULL DEFAULT '',
    duration_ns bigint NOT NULL DEFAULT 0,
    reason      text NOT NULL DEFAULT '',
    setup_link  text NOT NULL DEFAULT '',
    PRIMARY KEY (org, id)
);

-- The snapshot (state/snapshot.go): users, groups, memberships and the
-- organization's counters. known holds the non-empty known optional
-- columns of SPEC §4, custom the non-empty custom attributes; doc is a
-- group's directory group JSON as rendered.
CREATE TABLE rosterd.users (
    org        text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    id         text COLLATE "C" NOT NULL,
    active     boolean NOT NULL,
    email      text NOT NULL,
    first_name text NOT NULL,
    last_name  text NOT NULL,
    known      jsonb NOT NULL DEFAULT '{}',
    custom     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (org, id)
);

CREATE TABLE rosterd.groups (
    org     text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    id      text COLLATE "C" NOT NULL,
    name    text COLLATE "C" NOT NULL,
    in_file boolean NOT NULL,
    doc     json NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE INDEX groups_name ON rosterd.groups (org, name);

CREATE TABLE rosterd.memberships (
    org      text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    group_id text COLLATE "C" NOT NULL,
    user_id  text COLLATE "C" NOT NULL,
    PRIMARY KEY (org, group_id, user_id)
);
CREATE INDEX memberships_user ON rosterd.memberships (org, user_id, group_id);

CREATE TABLE rosterd.snapshot_counts (
    org         text COLLATE "C" PRIMARY KEY REFERENCES rosterd.organizations ON DELETE CASCADE,
    users       bigint NOT NULL DEFAULT 0,
    active      bigint NOT NULL DEFAULT 0,
    groups      bigint NOT NULL DEFAULT 0,
    memberships bigint NOT NULL DEFAULT 0
);

-- Batches and their reports (state/batches.go): record is the batch
-- record's JSON, so that fields added later need no migration; status
-- and created_at are copied out of it for the queries.
CREATE TABLE rosterd.batches (
    org        text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    id         text COLLATE "C" NOT NULL,
    status     text NOT NULL,
    created_at timestamptz NOT NULL,
    record     jsonb NOT NULL,
    report     json,
    PRIMARY KEY (org, id)
);
CREATE INDEX batches_open ON rosterd.batches (org, id) WHERE status IN ('pending', 'processing', 'held');

-- Processed completions (state/completions.go): the newest per kind and
-- per file name, as JSON records.
CREATE TABLE rosterd.completions_newest (
    org    text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    kind   text COLLATE "C" NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (org, kind)
);

CREATE TABLE rosterd.completion_files (
    org    text COLLATE "C" NOT NULL REFERENCES rosterd.organizations ON DELETE CASCADE,
    name   text COLLATE "C" NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (org, name)
);

-- Events (state/events.go): a batch's event records, the users and
-- groups they name as the batch left them, and one commit row that makes
-- them visible. Event ids are computed, not stored: "evt_" and the ULID
-- of (ms, seq, idx), so they sort in commit order across organizations.
-- No foreign keys to organizations: events outlive their organization
-- until retention removes them.
CREATE TABLE rosterd.event_clock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    ms  bigint NOT NULL
);
INSERT INTO rosterd.event_clock (one, seq, ms) VALUES (true, 0, 0);

CREATE TABLE rosterd.commits (
    seq        bigint PRIMARY KEY,
    ms         bigint NOT NULL,
    first_id   text COLLATE "C" NOT NULL UNIQUE,
    org        text COLLATE "C" NOT NULL,
    batch_id   text COLLATE "C" NOT NULL,
    count      integer NOT NULL,
    lo         integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    UNIQUE (org, batch_id)
);
CREATE INDEX commits_org ON rosterd.commits (org, first_id);

-- An event record is one of: data (the event's data as given), user_id
-- (a user event; previous holds previous_attributes of an update),
-- group_id (a group event), or both ids (a membership event).
CREATE TABLE rosterd.event_records (
    org      text COLLATE "C" NOT NULL,
    batch_id text COLLATE "C" NOT NULL,
    idx      integer NOT NULL,
    type     text NOT NULL,
    user_id  text COLLATE "C",
    group_id text COLLATE "C",
    data     json,
    previous json,
    PRIMARY KEY (org, batch_id, idx)
);

CREATE TABLE rosterd.event_users (
    org      text COLLATE "C" NOT NULL,
    batch_id text COLLATE "C" NOT NULL,
    user_id  text COLLATE "C" NOT NULL,
    doc      json NOT NULL,
    PRIMARY KEY (org, batch_id, user_id)
);

CREATE TABLE rosterd.event_groups (
    org      text COLLATE "C" NOT NULL,
    batch_id text COLLATE "C" NOT NULL,
    group_id text COLLATE "C" NOT NULL,
    doc      json NOT NULL,
    PRIMARY KEY (org, batch_id, group_id)
);

-- Webhook delivery (state/delivery.go). Cursors and failed deliveries
-- name organizations without a foreign key, as events do.
CREATE TABLE rosterd.endpoints (
    id              text COLLATE "C" PRIMARY KEY,
    url             text NOT NULL,
    start           text COLLATE "C" NOT NULL,
    first_seen      timestamptz NOT NULL,
    disabled        boolean NOT NULL DEFAULT false,
    disabled_at     timestamptz,
    disabled_reason text NOT NULL DEFAULT ''
);

CREATE TABLE rosterd.delivery_cursors (
    endpoint          text COLLATE "C" NOT NULL REFERENCES rosterd.endpoints ON DELETE CASCADE,
    org               text COLLATE "C" NOT NULL,
    after             text COLLATE "C" NOT NULL,
    retry_event       text COLLATE "C",
    retry_attempts    integer NOT NULL DEFAULT 0,
    retry_next_at     timestamptz,
    retry_last_status integer NOT NULL DEFAULT 0,
    retry_last_error  text NOT NULL DEFAULT '',
    PRIMARY KEY (endpoint, org)
);

CREATE TABLE rosterd.delivery_failed (
    endpoint    text COLLATE "C" NOT NULL REFERENCES rosterd.endpoints ON DELETE CASCADE,
    event_id    text COLLATE "C" NOT NULL,
    event       text NOT NULL,
    org         text COLLATE "C" NOT NULL,
    attempts    integer NOT NULL,
    last_status integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    failed_at   timestamptz NOT NULL,
    PRIMARY KEY (endpoint, event_id)
);

-- Shared secrets: the SSH host keys and the API token, so that every
-- instance of a fleet shows the same host key and accepts the same token.
CREATE TABLE rosterd.secrets (
    name       text COLLATE "C" PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL
);

-- Leases: an organization's batches ("batch:ORG") and an endpoint's
-- delivery to an organization ("delivery:ENDPOINT:ORG") run on the
-- instance holding the lease; token grows at each new holder (a fencing
-- token for the writes made under the lease).
CREATE TABLE rosterd.leases (
    name       text COLLATE "C" PRIMARY KEY,
    holder     text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- event_id is the id of event idx of the commit (ms, seq): "evt_" and the
-- ULID whose 48-bit time is ms and whose 80-bit entropy is seq (48 bits)
-- then idx (32 bits), in Crockford's base 32 (state/events.go eventID).
CREATE FUNCTION rosterd.event_id(ms bigint, seq bigint, idx integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT 'evt_' || string_agg(
        substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
               substring(b FROM 1 + 5 * i FOR 5)::integer + 1, 1), '' ORDER BY i)
    FROM (SELECT B'00' || ms::bit(48) || seq::bit(48) || idx::bit(32) AS b) AS v,
         generate_series(0, 25) AS i
$$;

-- The stable views (SPEC §11). They change in the transaction that
-- applies a batch, with its events: a reader never sees half a batch.

-- directory_users: one row per user of each organization's snapshot;
-- the known optional columns are NULL when empty; data is the directory
-- user of SPEC §6.
CREATE VIEW rosterd.directory_users AS
SELECT u.org AS organization_id,
       u.id,
       u.email,
       u.first_name,
       u.last_name,
       CASE WHEN u.active THEN 'active' ELSE 'inactive' END AS state,
       u.known ->> 'username' AS username,
       u.known ->> 'display_name' AS display_name,
       u.known ->> 'job_title' AS job_title,
       u.known ->> 'employee_type' AS employee_type,
       u.known ->> 'employment_start_date' AS employment_start_date,
       u.known ->> 'department_name' AS department_name,
       u.known ->> 'division_name' AS division_name,
       u.known ->> 'cost_center_name' AS cost_center_name,
       u.known ->> 'manager_id' AS manager_id,
       u.known ->> 'manager_name' AS manager_name,
       u.known ->> 'manager_email' AS manager_email,
       u.known ->> 'work_address_street' AS work_address_street,
       u.known ->> 'work_address_locality' AS work_address_locality,
       u.known ->> 'work_address_region' AS work_address_region,
       u.known ->> 'work_address_postal_code' AS work_address_postal_code,
       u.known ->> 'work_address_country' AS work_address_country,
       u.custom AS custom_attributes,
       jsonb_build_object('object', 'directory_user', 'id', u.id, 'organization_id', u.org,
                          'email', u.email, 'first_name', u.first_name, 'last_name', u.last_name,
                          'state', CASE WHEN u.active THEN 'active' ELSE 'inactive' END)
           || u.known || jsonb_build_object('custom_attributes', u.custom) AS data
FROM rosterd.users u;

-- directory_groups: one row per group; attributes are groups.csv's extra
-- columns; data is the directory group of SPEC §6.
CREATE VIEW rosterd.directory_groups AS
SELECT g.org AS organization_id,
       g.id,
       g.name,
       COALESCE(g.doc::jsonb -> 'attributes', '{}') AS attributes,
       g.doc::jsonb AS data
FROM rosterd.groups g;

-- directory_group_members: one row per membership.
CREATE VIEW rosterd.directory_group_members AS
SELECT m.org AS organization_id, m.group_id, m.user_id
FROM rosterd.memberships m;

-- events: every retained event. position orders events as their ids do
-- (commit order, then emission order) and is what a follower keeps as
-- its cursor: WHERE position > $last ORDER BY position.
CREATE VIEW rosterd.events AS
SELECT rosterd.event_id(c.ms, c.seq, e.idx) AS id,
       (c.seq << 32) | e.idx AS position,
       e.type AS event,
       c.org AS organization_id,
       c.batch_id,
       c.created_at,
       CASE
           WHEN e.data IS NOT NULL THEN e.data::jsonb
           WHEN e.user_id IS NOT NULL AND e.group_id IS NOT NULL
               THEN jsonb_build_object('user', u.doc::jsonb, 'group', g.doc::jsonb)
           WHEN e.user_id IS NOT NULL AND e.previous IS NOT NULL
               THEN u.doc::jsonb || jsonb_build_object('previous_attributes', e.previous::jsonb)
           WHEN e.user_id IS NOT NULL THEN u.doc::jsonb
           ELSE g.doc::jsonb
       END AS data
FROM rosterd.commits c
JOIN rosterd.event_records e
  ON e.org = c.org AND e.batch_id = c.batch_id AND e.idx >= c.lo AND e.idx < c.count
LEFT JOIN rosterd.event_users u
  ON u.org = e.org AND u.batch_id = e.batch_id AND u.user_id = e.user_id
LEFT JOIN rosterd.event_groups g
  ON g.org = e.org AND g.batch_id = e.batch_id AND g.group_id = e.group_id;
