-- Pilot invitations by chapter, for lists (only the code's hash is in the document).
CREATE TABLE volunteer_invitations (
    invitation_id TEXT PRIMARY KEY,
    chapter_id    TEXT NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX volunteer_invitations_chapter ON volunteer_invitations (chapter_id, invitation_id);
