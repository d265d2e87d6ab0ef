-- Web Push. Times: microseconds since the epoch.

-- The application server's VAPID key pair (one row): the private key sealed under the
-- service's own key (subject `service:vapid`, rewrapped with the master key), the public
-- key in clear (it is public).
CREATE TABLE notify_vapid (
    id         BIGINT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    public_key TEXT NOT NULL
);

-- Push subscriptions as notify's log tells them (`PushSubscriptionAdded`, `...Removed`):
-- the endpoint and keys sealed under the person's key, a keyed digest of the endpoint to
-- find the same browser again.
CREATE TABLE notify_push_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    person_id       TEXT NOT NULL,
    sealed          TEXT NOT NULL,
    endpoint_digest TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX notify_push_subscriptions_person ON notify_push_subscriptions (person_id, created_at);
