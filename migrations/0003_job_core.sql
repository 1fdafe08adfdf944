-- The job core: at most one active job per kind of work, the item counters that end a
-- job exactly once, and what an item needs to be (re)sent without its job type's code.

-- `active_key` names the work a job does ("all" rooms, "room-42", "company-<id>"); two
-- jobs of one type with the same key cannot both be queued or processing.
ALTER TABLE jobs
    ADD COLUMN active_key   text CHECK (length(active_key) BETWEEN 1 AND 200),
    -- How many items the job has, and how many have not reached a terminal state. Each
    -- item's one transition to a terminal state decrements `open_items` in the same
    -- statement, under the job row's lock, so exactly one transition sees it reach 0.
    ADD COLUMN total_items  integer NOT NULL DEFAULT 0 CHECK (total_items >= 0),
    ADD COLUMN open_items   integer NOT NULL DEFAULT 0 CHECK (open_items >= 0),
    ADD CONSTRAINT jobs_open_items_within_total CHECK (open_items <= total_items);

CREATE UNIQUE INDEX jobs_one_active_idx ON jobs (type, active_key)
    WHERE status IN ('queued', 'processing') AND active_key IS NOT NULL;

-- The queue message of the item, kept so that the sweeper can send an item that was
-- written but never sent, and the dead-letter consumer can find the item of a body.
ALTER TABLE job_items
    ADD COLUMN message        jsonb NOT NULL CHECK (jsonb_typeof(message) = 'object'),
    ADD COLUMN message_group  text NOT NULL CHECK (length(message_group) BETWEEN 1 AND 128),
    ADD COLUMN sent_at        timestamptz,
    ADD COLUMN started_at     timestamptz,
    ADD COLUMN finished_at    timestamptz,
    ADD CONSTRAINT job_items_finished_when_terminal CHECK (
        (status IN ('completed', 'unchanged', 'failed', 'canceled')) = (finished_at IS NOT NULL)
    );
