-- The event log on PostgreSQL.
--
-- Readers must never skip an event committed by a concurrent writer. Transactions commit
-- out of position order, so a reader following `position` alone can pass over a position
-- whose transaction commits later. Each event therefore records the id of the transaction
-- that wrote it; readers order by (tx_id, position) and read only rows whose transaction id
-- is below the oldest transaction still running (pg_snapshot_xmin). Every transaction below
-- that bound has finished, and every transaction still to commit has an id at or above it,
-- so nothing can later appear behind a reader's cursor.

CREATE TABLE eventlog_streams (
    stream_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL CHECK (version > 0)
);

CREATE TABLE eventlog_events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id          XID8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id       UUID NOT NULL,
    stream_id      TEXT NOT NULL,
    version        BIGINT NOT NULL CHECK (version > 0),
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        JSON NOT NULL,
    metadata       JSON NOT NULL,
    tenant         UUID,
    content_hash   BYTEA NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT eventlog_events_event_id_key UNIQUE (event_id),
    CONSTRAINT eventlog_events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX eventlog_events_tx_position ON eventlog_events (tx_id, position);

-- Checkpoints of consumers (projections, feeds of other services): the cursor is stored
-- as text because it may be another log's opaque cursor.
CREATE TABLE eventlog_checkpoints (
    consumer   TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- Appends events to one or several streams in one statement (one round trip, one implicit
-- transaction). Streams arrive sorted by id so that concurrent multi-stream appends lock
-- them in the same order and cannot deadlock. Expected version: -1 any, 0 no stream,
-- n > 0 exactly n. A version mismatch raises SX002 (DETAIL '<stream index>:<actual>');
-- an event id already stored raises 23505. The caller then looks the ids up to tell a
-- replay (same content: return the original positions) from a clash: that lookup is
-- kept off the common path on purpose.
CREATE FUNCTION eventlog_append(
    p_streams      TEXT[],
    p_expected     BIGINT[],
    p_counts       BIGINT[],
    p_event_ids    UUID[],
    p_event_stream INT[],
    p_event_offset INT[],
    p_types        TEXT[],
    p_schema       INT[],
    p_payloads     TEXT[],
    p_metadata     TEXT[],
    p_tenants      UUID[],
    p_occurred     TIMESTAMPTZ[],
    p_hashes       BYTEA[]
) RETURNS TABLE (o_event_id UUID, o_stream_id TEXT, o_version BIGINT, o_position BIGINT, o_tx BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    cur  BIGINT;
    base BIGINT[] := '{}';
BEGIN
    FOR i IN 1 .. cardinality(p_streams) LOOP
        IF p_expected[i] < 0 THEN
            INSERT INTO eventlog_streams AS s (stream_id, version) VALUES (p_streams[i], p_counts[i])
                ON CONFLICT (stream_id) DO UPDATE SET version = s.version + excluded.version
                RETURNING s.version - p_counts[i] INTO cur;
        ELSIF p_expected[i] = 0 THEN
            INSERT INTO eventlog_streams (stream_id, version) VALUES (p_streams[i], p_counts[i])
                ON CONFLICT (stream_id) DO NOTHING
                RETURNING 0 INTO cur;
        ELSE
            UPDATE eventlog_streams SET version = version + p_counts[i]
             WHERE stream_id = p_streams[i] AND version = p_expected[i]
             RETURNING p_expected[i] INTO cur;
        END IF;
        IF cur IS NULL THEN
            SELECT s.version INTO cur FROM eventlog_streams s WHERE s.stream_id = p_streams[i];
            RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'SX002',
                DETAIL = i::text || ':' || coalesce(cur, 0)::text;
        END IF;
        base[i] := cur;
    END LOOP;

    -- unnest yields the arrays in order and the insert consumes them in that order, so
    -- positions follow the caller's event order (the conformance suite checks it).
    RETURN QUERY
        INSERT INTO eventlog_events (event_id, stream_id, version, event_type, schema_version,
                                     payload, metadata, tenant, content_hash, occurred_at)
        SELECT x.id, p_streams[x.si], base[x.si] + x.off, x.t, x.sv, x.p::json, x.m::json, x.tn, x.h, x.oc
          FROM unnest(p_event_ids, p_event_stream, p_event_offset, p_types, p_schema, p_payloads,
                      p_metadata, p_tenants, p_hashes, p_occurred) AS x(id, si, off, t, sv, p, m, tn, h, oc)
        RETURNING event_id, stream_id, version, position, (tx_id::text)::bigint;
END
$$;
