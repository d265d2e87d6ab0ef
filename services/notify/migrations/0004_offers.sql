-- Ride requests' offers and escalation (issue 21): whether a request is still open (no
-- notice about it once claimed, withdrawn or expired), and which `request.unclaimed`
-- occasions (hours before its window: "72", "48") are settled, as a JSON list: decided, or
-- already past when the request was posted.
ALTER TABLE notify_requests ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE notify_requests ADD COLUMN told TEXT NOT NULL DEFAULT '[]';
