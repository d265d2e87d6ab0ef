-- Ride series (issue 20): one row per series, for the lists by care home, the daily
-- extension and the stop at a retired trishaw or pilot. A series itself (its dates and
-- what became of each) is read from its stream; `doc` is its plan, so the daily sweep
-- can tell which series have a date due without reading their streams. `booked_through`
-- is the last local date decided ('' before the first), `last_date` the series' last date
-- ('' when open-ended), both `YYYY-MM-DD` (they sort as text).
CREATE TABLE booking_series (
    ride_series_id TEXT PRIMARY KEY,
    chapter_id     TEXT NOT NULL,
    carehome_id    TEXT NOT NULL,
    bike_id        TEXT NOT NULL,
    pilot_id       TEXT NOT NULL,
    status         TEXT NOT NULL,
    booked_through TEXT NOT NULL,
    last_date      TEXT NOT NULL,
    doc            TEXT NOT NULL
);
CREATE INDEX booking_series_carehome ON booking_series (carehome_id, ride_series_id);
CREATE INDEX booking_series_status ON booking_series (status, ride_series_id);
CREATE INDEX booking_series_bike ON booking_series (bike_id, status);
CREATE INDEX booking_series_pilot ON booking_series (pilot_id, status);
