-- 0002_batches: what the batch operations need beyond 0001.
--
-- batch_heads: one row per organization that has had a batch. Every
-- write to an organization's batch records and completions locks its row
-- first, so that those writes run one at a time per organization, across
-- instances, as under bbolt's single writer (state/postgres/batches.go).
CREATE TABLE rosterd.batch_heads (
    org text COLLATE "C" PRIMARY KEY REFERENCES rosterd.organizations ON DELETE CASCADE
);

-- A batch record is kept as json, not jsonb: jsonb refuses the escape
-- \u0000, which encoding/json writes for a NUL byte in any text of the
-- record (an error message a failed run stores in last_error), and the
-- record is only ever read whole.
ALTER TABLE rosterd.batches ALTER COLUMN record TYPE json USING record::json;
