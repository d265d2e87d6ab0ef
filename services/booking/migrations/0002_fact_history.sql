-- Each fact's history (issue 17): after every event that changes a fact, the fact as it
-- then stood, from the moment it took effect (the event's time; a qualification from its
-- `qualified_on`, a consent from its `given_at`, when earlier). A ride recorded after the
-- fact is checked against the facts of its own time. Written with the fact, in the same
-- transaction; a redelivered event adds nothing (one row per event).
CREATE TABLE booking_fact_history (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (kind, id, event_id)
);
CREATE INDEX booking_fact_history_at ON booking_fact_history (kind, id, valid_from, seq);
