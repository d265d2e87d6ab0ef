-- The gateway's only state: idempotency records (portable SQL for SQLite and PostgreSQL).
-- `scope` is a hash of caller, method, path and key; `status` 0 means in flight;
-- `response` is the sealed response (status, headers, body).
CREATE TABLE gateway_idempotency (
    scope        TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX gateway_idempotency_created ON gateway_idempotency (created_at);
