-- A calendar token may expire (Unix seconds; NULL: it does not).
ALTER TABLE gateway_calendar_tokens ADD COLUMN expires_at BIGINT;
