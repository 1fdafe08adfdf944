-- The console pages rooms and companies by name and jobs newest first: each list's sort
-- key gets an index, so the next page starts where the last one stopped instead of
-- sorting the whole table again.
CREATE INDEX chatwork_rooms_name_idx ON chatwork_rooms (name, room_id);
CREATE INDEX companies_name_idx ON companies (name, id);
CREATE INDEX jobs_created_id_idx ON jobs (created_at DESC, id DESC);
