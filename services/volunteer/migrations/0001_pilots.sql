-- The volunteer service's read model: one row per pilot, its JSON document (personal
-- fields sealed, never in clear) and the columns lists filter by.
CREATE TABLE volunteer_pilots (
    pilot_id   TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    doc        TEXT NOT NULL
);

CREATE INDEX volunteer_pilots_chapter ON volunteer_pilots (chapter_id, pilot_id);
