-- The memberships Chatwork refused (few): a room check that reads a list of tens of
-- thousands of rooms finds the refusals the list lifts through this index instead of
-- visiting every membership of the connection (`connections::store::record_listing`;
-- BENCHMARKS.md, measurement 11).
CREATE INDEX chatwork_room_connections_refused ON chatwork_room_connections (connection_id)
    WHERE refused_at IS NOT NULL;
