-- The one sanctioned in-place change of stored events: an operator's migration rewrote
-- payloads (free text that an older release stored in clear, re-sealed). One row per run,
-- naming the events and fields it rewrote, never their old content (docs/eventlog.md).
CREATE TABLE eventlog_rewrites (
    rewrite_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    reason       TEXT NOT NULL,
    events       TEXT NOT NULL,
    event_count  INTEGER NOT NULL,
    rewritten_at TEXT NOT NULL
);
