-- E-mail delivery, contact details and preferences. Times: microseconds since the epoch.

-- Pilots as volunteer's feed tells them: whose account acts as the pilot, and erasure.
CREATE TABLE notify_pilots (
    pilot_id   TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    -- The person linked to the pilot record (empty: none).
    person_id  TEXT NOT NULL DEFAULT '',
    erased     BIGINT NOT NULL DEFAULT 0
);

-- Notices waiting to go out on a channel other than the inbox (e-mail): written by the
-- projection of notify's log in the transaction that applies the decision, deleted when
-- its outcome (delivered, failed, not sent) is recorded. `next_at` is the next attempt
-- (a sender leases a row by moving it forward).
CREATE TABLE notify_outbox (
    notice_id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind      TEXT NOT NULL,
    channel   TEXT NOT NULL,
    due_at    BIGINT NOT NULL,
    next_at   BIGINT NOT NULL,
    attempts  BIGINT NOT NULL DEFAULT 0,
    doc       TEXT NOT NULL
);
CREATE INDEX notify_outbox_next ON notify_outbox (next_at);

-- Outcomes of notices on channels other than the inbox (a person's export lists them).
CREATE TABLE notify_deliveries (
    notice_id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind      TEXT NOT NULL,
    channel   TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX notify_deliveries_recipient ON notify_deliveries (recipient, at);

-- A person's contact details per channel: `confirmed` and `pending` are sealed under the
-- person's key (JSON of a sealed value; empty: none); the pending one's code as a keyed
-- digest, its expiry and the wrong tries so far.
CREATE TABLE notify_contacts (
    person_id       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    confirmed       TEXT NOT NULL DEFAULT '',
    pending         TEXT NOT NULL DEFAULT '',
    code_digest     TEXT NOT NULL DEFAULT '',
    code_expires_at BIGINT NOT NULL DEFAULT 0,
    tries           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (person_id, channel)
);

-- Chosen preferences per recipient (`person:<id>`, or `pilot:<id>` for a pilot record
-- without an account, from an unsubscribe link): JSON.
CREATE TABLE notify_preferences (
    recipient TEXT PRIMARY KEY,
    doc       TEXT NOT NULL
);

-- Recipients erased: nothing more is decided for them (an id, no personal data).
CREATE TABLE notify_erased (
    recipient TEXT PRIMARY KEY
);

-- Ride requests as booking's feed tells them (a claim tells the home's coordinators).
CREATE TABLE notify_requests (
    ride_request_id TEXT PRIMARY KEY,
    chapter_id      TEXT NOT NULL,
    carehome_id     TEXT NOT NULL,
    window_from     BIGINT NOT NULL
);

-- Chapter admins as care-home's feed tells them.
CREATE TABLE notify_chapter_admins (
    chapter_id TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    PRIMARY KEY (chapter_id, person_id)
);

-- Pilots' qualifications (volunteer's feed) and the validity last told about.
CREATE TABLE notify_qualifications (
    pilot_id    TEXT NOT NULL,
    bike_type   TEXT NOT NULL,
    -- YYYY-MM-DD.
    valid_until TEXT NOT NULL,
    -- The `valid_until` whose expiry notice was decided (empty: none yet).
    told        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pilot_id, bike_type)
);
CREATE INDEX notify_qualifications_until ON notify_qualifications (valid_until);
