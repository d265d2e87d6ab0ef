-- Notify's tables beside its log. Times are microseconds since the Unix epoch (UTC).

-- What notify knows of the other services' objects, from their feeds.
CREATE TABLE notify_chapters (
    chapter_id     TEXT PRIMARY KEY,
    timezone       TEXT NOT NULL,
    -- JSON array of the chapter's reminder lead times in minutes.
    reminder_leads TEXT NOT NULL
);

CREATE TABLE notify_carehomes (
    carehome_id TEXT PRIMARY KEY,
    chapter_id  TEXT NOT NULL,
    -- A care home's name is not personal; empty: the chapter's zone.
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL
);

CREATE TABLE notify_coordinators (
    carehome_id TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    PRIMARY KEY (carehome_id, person_id)
);

CREATE TABLE notify_rides (
    ride_id     TEXT PRIMARY KEY,
    chapter_id  TEXT NOT NULL,
    carehome_id TEXT NOT NULL,
    pilot_id    TEXT NOT NULL,
    starts_at   BIGINT NOT NULL,
    status      TEXT NOT NULL,
    riders      BIGINT NOT NULL,
    -- JSON array of the reminders decided: "<starts_at>/<lead minutes>".
    reminded    TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX notify_rides_start ON notify_rides (status, starts_at);

-- Occasions an event started, waiting to be decided: written in the transaction that
-- moves the feed's checkpoint, deleted once decided (an outbox).
CREATE TABLE notify_pending (
    occasion TEXT PRIMARY KEY,
    due_at   BIGINT NOT NULL,
    doc      TEXT NOT NULL
);

-- The inbox: notify's own log, projected.
CREATE TABLE notify_inbox (
    notice_id  TEXT PRIMARY KEY,
    -- The order the inbox received its notices in (1, 2, ...; the inbox's one runner
    -- assigns it): what a stream of the inbox resumes after.
    seq        BIGINT NOT NULL,
    recipient  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at    BIGINT,
    doc        TEXT NOT NULL
);
CREATE INDEX notify_inbox_recipient ON notify_inbox (recipient, created_at, notice_id);
CREATE INDEX notify_inbox_seq ON notify_inbox (recipient, seq);
