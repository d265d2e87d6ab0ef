-- The credential a webhook or calendar token was made with, checked before each delivery
-- and each calendar read: `key:<api_key_id>`, `grant:<person_id>:<role_grant_id>`, or ''
-- (a Samskab token, whose role is in its claims). A revoked key or grant stops them.
ALTER TABLE gateway_webhooks ADD COLUMN owner_credential TEXT NOT NULL DEFAULT '';
ALTER TABLE gateway_calendar_tokens ADD COLUMN owner_credential TEXT NOT NULL DEFAULT '';
