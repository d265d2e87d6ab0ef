-- Snapshots of a chapter's rides as counted, for the stats as of a moment (issue 22):
-- `body` is a JSON `asof::Snapshot` (every ride as the counting rule sees it, the active
-- rides whole, and the cursor to resume from). Derived from the log: a rebuild empties it.
CREATE TABLE booking_stats_snapshots (
    chapter_id TEXT NOT NULL,
    taken_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (chapter_id, taken_at)
);
