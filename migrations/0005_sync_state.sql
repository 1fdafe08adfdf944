-- What the two sync job types keep between runs (issue 5): rooms the account left, the
-- state of a room at its last successful messages sync, gaps in its history, and the
-- room list a messages sync decides by.

ALTER TABLE chatwork_rooms
    -- When a rooms sync last found the room missing from `GET /rooms` (the account left
    -- it, or it was deleted); NULL while it is listed. The room and its messages stay;
    -- messages syncs skip it. A rooms sync that lists it again clears this.
    ADD COLUMN left_at                  timestamptz,
    -- Chatwork's `last_update_time` and `message_num` as the snapshot of the room's last
    -- successful messages sync saw them. A messages sync fetches a room only when its
    -- `last_update_time` differs from this one. Kept apart from `chatwork_updated_at` and
    -- `message_count`, which rooms syncs move: a rooms sync between two messages syncs
    -- must not hide a change from the next messages sync.
    ADD COLUMN synced_last_update_time  timestamptz,
    -- How many messages the room had, as far as we know, at that sync (the baseline that
    -- `message_num` growth is compared with to detect gaps).
    ADD COLUMN synced_message_num       integer CHECK (synced_message_num >= 0),
    -- The room is new or changed since its description was last fetched; a rooms sync
    -- fetches those (within the rate budget) and clears the flag.
    ADD COLUMN description_stale        boolean NOT NULL DEFAULT false,
    -- The last gap seen: a sync found more messages than one request returns (100) since
    -- the previous one, so some could not be fetched. When, and how many were missed
    -- (an estimate).
    ADD COLUMN gap_detected_at          timestamptz,
    ADD COLUMN gap_missed_estimate      integer CHECK (gap_missed_estimate > 0),
    ADD CONSTRAINT chatwork_rooms_gap_fields_together
        CHECK ((gap_detected_at IS NULL) = (gap_missed_estimate IS NULL));

-- The rooms messages syncs go through: listed and not left.
CREATE INDEX chatwork_rooms_syncable_idx ON chatwork_rooms (room_id)
    WHERE is_active AND left_at IS NULL;

-- The `GET /rooms` answer a messages sync decides by, taken once per job by whichever of
-- its consumers needs it first and shared with the others. One consumer claims the row
-- and asks Chatwork; the others wait for `rooms`. A claim whose holder died is taken
-- over once `claimed_at` is older than the claim lease.
CREATE TABLE job_room_snapshots (
    job_id      uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    -- The claimant's token, so that only it can give the claim back.
    claim       uuid NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    -- `{"<room_id>": {"lastUpdateTime": <epoch s>, "messageNum": <n>}}`; NULL until taken.
    rooms       jsonb CHECK (rooms IS NULL OR jsonb_typeof(rooms) = 'object'),
    taken_at    timestamptz,
    CHECK ((rooms IS NULL) = (taken_at IS NULL))
);
