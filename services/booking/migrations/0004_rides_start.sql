-- Every ride in a window (an admin's list without a filter) walks this index in order
-- instead of reading and sorting every ride (issue 22; the plan is pinned by
-- readmodel::plan_tests).
CREATE INDEX booking_rides_start ON booking_rides (start_at, ride_id);
