-- How many webhooks each owner has (active and disabled), so that the cap per owner holds
-- under concurrent creation: a creation raises its owner's count only while it is below
-- the cap (one row, locked by the update), and a deletion lowers it.
CREATE TABLE gateway_webhook_owners (
    owner    TEXT PRIMARY KEY,
    webhooks BIGINT NOT NULL
);
INSERT INTO gateway_webhook_owners (owner, webhooks) SELECT owner, count(*) FROM gateway_webhooks GROUP BY owner;
