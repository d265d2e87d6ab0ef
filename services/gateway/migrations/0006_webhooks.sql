-- Webhooks (portable SQL for SQLite and PostgreSQL). Times are unix milliseconds.
-- `secret` is sealed with the gateway's key store; `owner` is a hash of the integrator's
-- role, scope and subject; `chapter_id` is '-' for the whole network; `feed_cursor` is
-- where the dispatcher reads the merged feed next and `enqueued` how many items it queued.
CREATE TABLE gateway_webhooks (
    webhook_id  TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    chapter_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT NOT NULL,
    feed_cursor TEXT NOT NULL,
    event_types TEXT NOT NULL,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    enqueued    BIGINT NOT NULL
);
CREATE INDEX gateway_webhooks_owner ON gateway_webhooks (owner, webhook_id);

-- Feed items still to deliver, per webhook; a stream's lowest `seq` is its head, which
-- alone is attempted (in order per stream). Delivered items are deleted.
CREATE TABLE gateway_webhook_queue (
    webhook_id      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    stream          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    first_failed_at BIGINT NOT NULL,
    item            TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX gateway_webhook_queue_stream ON gateway_webhook_queue (webhook_id, stream, seq);

-- Every attempt.
CREATE TABLE gateway_webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    error       TEXT NOT NULL
);
CREATE INDEX gateway_webhook_deliveries_hook ON gateway_webhook_deliveries (webhook_id, delivery_id);
