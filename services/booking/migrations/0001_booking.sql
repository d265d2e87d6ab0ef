-- Booking's read models (portable SQL: the same file serves SQLite and PostgreSQL).

-- Facts learnt from the care-home and volunteer feeds, one JSON document per object.
CREATE TABLE booking_facts (
    kind   TEXT NOT NULL,
    id     TEXT NOT NULL,
    parent TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX booking_facts_parent ON booking_facts (kind, parent, id);

-- Events of other services that cancel rides or change rosters, written in the same
-- transaction as the fact. A row is worked twice: at once, and again after the longest a
-- booking decided on the old fact can take to commit; then it is deleted.
CREATE TABLE booking_outbox (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    data        TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    pass        BIGINT NOT NULL,
    due_at      BIGINT NOT NULL DEFAULT 0
);

-- Rides for lists, availability and cascades; single rides are read from their stream.
-- Times are microseconds since the Unix epoch (UTC).
CREATE TABLE booking_rides (
    ride_id     TEXT PRIMARY KEY,
    chapter_id  TEXT NOT NULL,
    carehome_id TEXT NOT NULL,
    bike_id     TEXT NOT NULL,
    pilot_id    TEXT NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT NOT NULL,
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX booking_rides_chapter ON booking_rides (chapter_id, start_at);
CREATE INDEX booking_rides_carehome ON booking_rides (carehome_id, start_at);
CREATE INDEX booking_rides_bike ON booking_rides (bike_id, start_at);
CREATE INDEX booking_rides_pilot ON booking_rides (pilot_id, start_at);

CREATE TABLE booking_ride_riders (
    ride_id     TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    start_at    BIGINT NOT NULL,
    PRIMARY KEY (ride_id, resident_id)
);
CREATE INDEX booking_ride_riders_resident ON booking_ride_riders (resident_id, start_at);

CREATE TABLE booking_ride_requests (
    ride_request_id TEXT PRIMARY KEY,
    chapter_id      TEXT NOT NULL,
    carehome_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    window_to       BIGINT NOT NULL,
    doc             TEXT NOT NULL
);
CREATE INDEX booking_ride_requests_carehome ON booking_ride_requests (carehome_id, ride_request_id);
