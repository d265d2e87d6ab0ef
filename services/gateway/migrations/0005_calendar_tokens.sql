-- Calendar tokens: read-only, revocable credentials for one calendar feed, put in its URL
-- by calendar applications. Only a SHA-256 hash of the secret is kept; revoking deletes
-- the row. `owner_*` is who made it (its rights apply at each use).
CREATE TABLE gateway_calendar_tokens (
    calendar_token_id TEXT PRIMARY KEY,
    token_hash        TEXT NOT NULL UNIQUE,
    calendar_kind     TEXT NOT NULL,
    calendar_id       TEXT NOT NULL,
    chapter_id        TEXT NOT NULL,
    owner_role        TEXT NOT NULL,
    owner_scope       TEXT NOT NULL,
    owner_sub         TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX gateway_calendar_tokens_owner ON gateway_calendar_tokens (owner_sub, calendar_token_id);
