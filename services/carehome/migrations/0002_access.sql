-- People's access kept by the care-home service: role grants in force (admins, chapter
-- admins, coordinators) by person and chapter, invitations and API keys by chapter. Only
-- hashes of codes and keys, never the secrets. `last_used_at` (Unix seconds) is not an
-- event: it is written at most once a minute per key.
CREATE TABLE carehome_grants (
    role_grant_id TEXT PRIMARY KEY,
    person_id     TEXT NOT NULL,
    chapter_id    TEXT NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX carehome_grants_person ON carehome_grants (person_id);
CREATE INDEX carehome_grants_chapter ON carehome_grants (chapter_id, role_grant_id);

CREATE TABLE carehome_invitations (
    invitation_id TEXT PRIMARY KEY,
    chapter_id    TEXT NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX carehome_invitations_chapter ON carehome_invitations (chapter_id, invitation_id);

CREATE TABLE carehome_api_keys (
    api_key_id TEXT PRIMARY KEY,
    chapter_id TEXT NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX carehome_api_keys_chapter ON carehome_api_keys (chapter_id, api_key_id);

-- Kept apart from the projection's rows, so a use is recorded even before the key's row
-- is projected.
CREATE TABLE carehome_api_key_use (
    api_key_id   TEXT PRIMARY KEY,
    last_used_at BIGINT NOT NULL
);
