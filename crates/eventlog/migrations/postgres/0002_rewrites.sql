-- The one sanctioned in-place change of stored events: an operator's migration rewrote
-- payloads (free text that an older release stored in clear, re-sealed). One row per run,
-- naming the events and fields it rewrote, never their old content (docs/eventlog.md).
-- Components get SELECT only (`samskab migrate --grant-roles`), as on eventlog_events
-- they get no UPDATE: only the schema's owner rewrites.
CREATE TABLE eventlog_rewrites (
    rewrite_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reason       TEXT NOT NULL,
    events       JSON NOT NULL,
    event_count  BIGINT NOT NULL,
    rewritten_at TEXT NOT NULL
);
