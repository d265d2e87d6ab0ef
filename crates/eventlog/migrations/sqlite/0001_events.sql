-- The event log on SQLite. Appends take the write lock up front (BEGIN IMMEDIATE), so
-- transactions commit in position order and a reader following `position` skips nothing.
-- Times are microseconds since the Unix epoch (UTC); ids are 16-byte blobs.

CREATE TABLE eventlog_streams (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL CHECK (version > 0)
) WITHOUT ROWID;

CREATE TABLE eventlog_events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB NOT NULL UNIQUE,
    stream_id      TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    tenant         BLOB,
    content_hash   BLOB NOT NULL,
    occurred_at    INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE eventlog_checkpoints (
    consumer   TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
