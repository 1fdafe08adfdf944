-- The room check (issue 16): one `GET /rooms` every minute decides which rooms need a
-- fetch, by how many messages each room has that we have not seen and by edits. What a
-- room needs between checks lives on the room; what each check saw and did is a row of
-- `room_checks`, which the status route reads.

ALTER TABLE chatwork_rooms
    -- Since when the room checks have found it needing a fetch (new messages or an
    -- edit since its last successful fetch); NULL when the last check found it current.
    -- A check that cannot fetch every changed room fetches those waiting longest first
    -- among equally risky ones; a fetch clears it.
    ADD COLUMN fetch_wanted_since        timestamptz,
    -- What the room checks last saw of the room: `message_num`, `last_update_time`, and
    -- when a check last found them (or the room's need of a fetch) changed.
    -- Kept apart from `message_count` and `chatwork_updated_at` (the rooms sync's), so a
    -- check never hides a change from the rooms sync's description refresh.
    ADD COLUMN checked_at                timestamptz,
    ADD COLUMN checked_message_num       integer CHECK (checked_message_num >= 0),
    ADD COLUMN checked_last_update_time  timestamptz,
    -- Chatwork's `chatwork-message-limitation` header on the room's last fetch that
    -- carried one (free plans see only the latest 5,000 messages of the last 40 days),
    -- and when it was seen. NULL: never seen.
    ADD COLUMN message_limitation        text CHECK (char_length(message_limitation) <= 200),
    ADD COLUMN message_limitation_at     timestamptz,
    ADD CONSTRAINT chatwork_rooms_limitation_fields_together
        CHECK ((message_limitation IS NULL) = (message_limitation_at IS NULL));

-- One row per room check, whatever its outcome.
CREATE TABLE room_checks (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    checked_at          timestamptz NOT NULL DEFAULT now(),
    -- `schedule`: the scheduled task; `sync`: a messages sync of all rooms started over
    -- HTTP.
    trigger             text NOT NULL CHECK (trigger IN ('schedule', 'sync')),
    -- `current`: nothing to fetch, no job; `fetching`: a job fetches the planned rooms;
    -- `deferred`: rooms need a fetch but the budget allows none now; `busy`: the
    -- previous check's fetches still run, nothing new was planned;
    -- `failed`: the room list could not be read.
    outcome             text NOT NULL
                        CHECK (outcome IN ('current', 'fetching', 'deferred', 'busy', 'failed')),
    rooms_listed        integer NOT NULL DEFAULT 0 CHECK (rooms_listed >= 0),
    rooms_registered    integer NOT NULL DEFAULT 0 CHECK (rooms_registered >= 0),
    rooms_changed       integer NOT NULL DEFAULT 0 CHECK (rooms_changed >= 0),
    rooms_fetched       integer NOT NULL DEFAULT 0 CHECK (rooms_fetched >= 0),
    rooms_deferred      integer NOT NULL DEFAULT 0 CHECK (rooms_deferred >= 0),
    -- The most unseen messages of one room, and their sum, over the rooms checked.
    unseen_max          integer NOT NULL DEFAULT 0 CHECK (unseen_max >= 0),
    unseen_total        bigint NOT NULL DEFAULT 0 CHECK (unseen_total >= 0),
    -- The token's budget after the check's own request, and the fetches it allowed.
    budget_limit        integer,
    budget_remaining    integer,
    budget_reset_at     timestamptz,
    allowance           integer NOT NULL DEFAULT 0 CHECK (allowance >= 0),
    -- The time to the next check the check planned with (its schedule's cadence): the
    -- status route's rooms at risk are those whose rate fills a fetch in that time.
    cadence_secs        integer NOT NULL CHECK (cadence_secs > 0),
    job_id              uuid REFERENCES jobs (id) ON DELETE SET NULL,
    -- The room list's `chatwork-message-limitation` header, when it carried one.
    message_limitation  text CHECK (char_length(message_limitation) <= 200),
    error               text CHECK (char_length(error) <= 500),
    CHECK ((outcome = 'failed') = (error IS NOT NULL))
);
CREATE INDEX room_checks_checked_at_idx ON room_checks (checked_at DESC);

