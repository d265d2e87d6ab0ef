-- The ids an idempotent answer names (residents, pilots, rides...), space-separated, so
-- that the erasure of a person drops every kept answer that may carry their data (a retry
-- then runs again and the service answers from its state, erased).
ALTER TABLE gateway_idempotency ADD COLUMN subjects TEXT NOT NULL DEFAULT '';
