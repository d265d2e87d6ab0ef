-- The care-home service's read model: one row per chapter, care home, trishaw and
-- resident, holding its JSON document (`{"version": n, "state": {...}}`; residents'
-- personal fields sealed, never in clear) and the columns lists filter and count by.
-- `parent_id` is the chapter of a care home and the care home of a trishaw or resident
-- (a chapter's is itself); `status` is the object's status where it has one.
CREATE TABLE carehome_chapters (
    id         TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    doc        TEXT NOT NULL
);

CREATE TABLE carehome_carehomes (
    id         TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    doc        TEXT NOT NULL
);

CREATE INDEX carehome_carehomes_parent ON carehome_carehomes (parent_id, id);

CREATE TABLE carehome_bikes (
    id         TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    doc        TEXT NOT NULL
);

CREATE INDEX carehome_bikes_parent ON carehome_bikes (parent_id, id);
CREATE INDEX carehome_bikes_chapter ON carehome_bikes (chapter_id, status);

CREATE TABLE carehome_residents (
    id         TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    doc        TEXT NOT NULL
);

CREATE INDEX carehome_residents_parent ON carehome_residents (parent_id, id);
