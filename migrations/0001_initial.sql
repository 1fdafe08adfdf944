-- cwsync's data model (DESIGN section 2). Rules that the data must obey live here as
-- constraints, so that no code path (or operator with psql) can break them.

-- Companies are owned upstream by another part of the product; this is the minimal
-- table that lets cwsync stand alone.
CREATE TABLE companies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chatwork_rooms (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Chatwork's own id of the room.
    room_id              bigint NOT NULL UNIQUE CHECK (room_id > 0),
    name                 text NOT NULL,
    description          text,
    room_type            text NOT NULL CHECK (room_type IN ('my', 'direct', 'group')),
    icon_path            text,
    -- Chatwork's `last_update_time`.
    chatwork_updated_at  timestamptz,
    -- Chatwork's `message_num`.
    message_count        integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    is_active            boolean NOT NULL DEFAULT true,
    last_sync_at         timestamptz,
    -- Chatwork message ids are decimal strings that outgrow bigint: kept as text, and
    -- compared numerically wherever they are compared.
    last_message_id      text CHECK (last_message_id ~ '^[0-9]{1,40}$'),
    last_error_at        timestamptz,
    last_error_message   text CHECK (char_length(last_error_message) <= 500),
    last_error_status    integer CHECK (last_error_status BETWEEN 100 AND 599),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- The three error fields are set and cleared together (status may be absent for a
    -- network error, which has none).
    CHECK ((last_error_at IS NULL) = (last_error_message IS NULL)),
    CHECK (last_error_status IS NULL OR last_error_at IS NOT NULL),
    -- Lets `messages` reference (id, room_id) together, so a message's two room keys
    -- can never disagree.
    UNIQUE (id, room_id)
);

CREATE TABLE company_room_links (
    company_id        uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    chatwork_room_id  uuid NOT NULL REFERENCES chatwork_rooms (id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, chatwork_room_id)
);
CREATE INDEX company_room_links_room_idx ON company_room_links (chatwork_room_id);

CREATE TABLE messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chatwork_room_id    uuid NOT NULL,
    room_id             bigint NOT NULL,
    message_id          text NOT NULL CHECK (message_id ~ '^[0-9]{1,40}$'),
    -- The numeric value of `message_id`, for ordering and cursors; never compare the text.
    message_seq         numeric(40, 0) GENERATED ALWAYS AS (message_id::numeric) STORED,
    account_id          bigint NOT NULL,
    account_name        text NOT NULL,
    account_avatar_url  text,
    body                text NOT NULL,
    send_time           timestamptz NOT NULL,
    -- NULL: never edited (Chatwork sends 0).
    update_time         timestamptz,
    company_id          uuid REFERENCES companies (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (room_id, message_id),
    FOREIGN KEY (chatwork_room_id, room_id)
        REFERENCES chatwork_rooms (id, room_id) ON DELETE CASCADE
);
-- Newest first per room (the messages route and its cursor).
CREATE INDEX messages_room_time_idx ON messages (chatwork_room_id, send_time DESC, message_seq DESC);
-- A company's messages in a period (summary drafts).
CREATE INDEX messages_company_time_idx ON messages (company_id, send_time) WHERE company_id IS NOT NULL;

CREATE TYPE job_type AS ENUM ('chatwork_rooms_sync', 'chatwork_messages_sync', 'summary_draft');
CREATE TYPE job_status AS ENUM ('queued', 'processing', 'completed', 'failed', 'canceled');

CREATE TABLE jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type         job_type NOT NULL,
    status       job_status NOT NULL DEFAULT 'queued',
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(payload) = 'object'),
    result       jsonb,
    -- `{name, message, stack?}`
    error        jsonb CHECK (
        error IS NULL
        OR (jsonb_typeof(error) = 'object' AND error ? 'name' AND error ? 'message')
    ),
    -- The JWT `sub` of the requester; NULL for scheduled jobs.
    user_id      text,
    started_at   timestamptz,
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- A job is finished exactly when its status is terminal.
    CHECK ((status IN ('completed', 'failed', 'canceled')) = (finished_at IS NOT NULL)),
    -- Work happened only after a start (a queued job may still be canceled or failed
    -- without ever starting).
    CHECK (status NOT IN ('processing', 'completed') OR started_at IS NOT NULL),
    CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX jobs_type_status_idx ON jobs (type, status);
CREATE INDEX jobs_created_at_idx ON jobs (created_at);

CREATE TYPE job_item_status AS ENUM (
    'pending',      -- written, not yet handed to the queue
    'queued',       -- handed to the queue
    'processing',
    'completed',
    'unchanged',    -- nothing to do (a room that did not move since its last sync)
    'failed',
    'canceled'
);

-- One row per unit of fan-out work (one room of a messages sync; the single unit of
-- the other job types). A job's progress and result are derived from these rows, so
-- a redelivered queue message cannot count twice.
CREATE TABLE job_items (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    item_key     text NOT NULL CHECK (length(item_key) BETWEEN 1 AND 200),
    status       job_item_status NOT NULL DEFAULT 'pending',
    fetched      integer NOT NULL DEFAULT 0 CHECK (fetched >= 0),
    result       jsonb,
    error        jsonb,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, item_key)
);
CREATE INDEX job_items_open_idx ON job_items (status, updated_at)
    WHERE status IN ('pending', 'queued', 'processing');

CREATE TABLE summary_drafts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id     uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    job_id         uuid REFERENCES jobs (id) ON DELETE SET NULL,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    content        text NOT NULL,
    source_links   jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(source_links) = 'array'),
    model          text NOT NULL,
    token_usage    jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start)
);
CREATE INDEX summary_drafts_company_idx ON summary_drafts (company_id, created_at DESC);
-- One draft per job, so a redelivered summary message cannot store a second one.
CREATE UNIQUE INDEX summary_drafts_job_idx ON summary_drafts (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE audit_logs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor          text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'writer', 'reader', 'system')),
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text,
    old_values     jsonb,
    new_values     jsonb,
    request_id     text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_type, resource_id);

-- Chatwork's rate limit for one API token, shared by every process that uses the token.
-- Keyed by a SHA-256 of the token, never the token itself.
CREATE TABLE chatwork_rate_budgets (
    token_hash    bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    -- The limit of the current window, as Chatwork last reported it.
    limit_count   integer NOT NULL CHECK (limit_count > 0),
    -- Requests still allowed in the current window (reservations already taken off).
    remaining     integer NOT NULL CHECK (remaining >= 0),
    -- When the current window ends and the budget is whole again.
    reset_at      timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (remaining <= limit_count)
);
