-- Which gateway process claimed an in-flight key (a random id per process start), so that
-- the same process can tell its own orphaned claims (a request that ended without
-- recording its answer, e.g. while the database was down) from requests still running.
ALTER TABLE gateway_idempotency ADD COLUMN owner TEXT NOT NULL DEFAULT '';
