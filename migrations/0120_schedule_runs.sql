-- Every run of a scheduled task, and the tasks an operator paused. See
-- docs/architecture.md, "Scheduled tasks".

-- One row per task; seeded here so that a task that never ran still has a time to be
-- overdue from (`created_at`). `paused_at` NULL: the task runs.
CREATE TABLE schedule_tasks (
    task        text PRIMARY KEY
                CHECK (task IN ('room-check', 'rooms-sync', 'messages-sync', 'sweep',
                                'retention', 'migrate')),
    paused_at   timestamptz,
    paused_by   text,
    reason      text CHECK (char_length(reason) <= 500),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((paused_at IS NULL) = (paused_by IS NULL)),
    CHECK (paused_at IS NOT NULL OR reason IS NULL)
);
INSERT INTO schedule_tasks (task)
VALUES ('room-check'), ('rooms-sync'), ('messages-sync'), ('sweep'), ('retention'), ('migrate');

-- A run is open while `ended_at` is NULL: `requested` (a person asked for it, no
-- process took it yet: `started_at` NULL) or running. A closed run has its outcome.
CREATE TABLE schedule_runs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task          text NOT NULL REFERENCES schedule_tasks (task),
    -- 'schedule', or the JWT `sub` of the person who asked for it.
    trigger       text NOT NULL CHECK (char_length(trigger) BETWEEN 1 AND 200),
    dry_run       boolean NOT NULL DEFAULT false,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    ended_at      timestamptz,
    outcome       text CHECK (outcome IN ('completed', 'failed', 'paused', 'skipped_overlap')),
    report        jsonb,
    error         text,
    request_id    text,
    CHECK ((ended_at IS NULL) = (outcome IS NULL)),
    CHECK (ended_at IS NULL OR started_at IS NOT NULL),
    CHECK (outcome = 'failed' OR error IS NULL),
    CHECK (NOT dry_run OR task IN ('retention', 'sweep'))
);
-- Runs of one task never overlap: at most one open run per task. A second start meets
-- this index and is recorded as skipped (the schedule) or refused (a person).
CREATE UNIQUE INDEX schedule_runs_one_open_idx ON schedule_runs (task) WHERE ended_at IS NULL;
-- The history of a task, newest first, and the requested runs a scheduler picks up.
CREATE INDEX schedule_runs_task_idx ON schedule_runs (task, requested_at DESC, id DESC);
CREATE INDEX schedule_runs_requested_idx ON schedule_runs (requested_at)
    WHERE started_at IS NULL AND ended_at IS NULL;
CREATE INDEX schedule_runs_ended_idx ON schedule_runs (ended_at);
