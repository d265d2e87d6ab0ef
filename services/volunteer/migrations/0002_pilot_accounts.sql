-- The person a pilot record is linked to (PilotAccountLinked), so a person's pilot grants
-- are found without reading every pilot. Rows before this are not linked.
ALTER TABLE volunteer_pilots ADD COLUMN person_id TEXT;

CREATE INDEX volunteer_pilots_person ON volunteer_pilots (person_id);
