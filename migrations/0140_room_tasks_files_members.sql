-- The rest of a room besides its messages: its tasks, its files (metadata here, the
-- content in object storage) and its members. The room list's `task_num` and `file_num`
-- say for free when a room's tasks or files changed, as `message_num` does for messages:
-- the room check compares them with what the room's last tasks and files syncs saw.
-- A room's company is not copied onto these rows: the company routes join
-- `company_room_links`, so linking or unlinking a room takes effect at once.

ALTER TABLE chatwork_rooms
    -- What the room checks last saw of `task_num` and `file_num`.
    ADD COLUMN checked_task_num   integer CHECK (checked_task_num >= 0),
    ADD COLUMN checked_file_num   integer CHECK (checked_file_num >= 0),
    -- What the room list said when the room's last successful tasks (files) sync
    -- started; NULL: never synced. A check whose count differs wants a sync.
    ADD COLUMN synced_task_num    integer CHECK (synced_task_num >= 0),
    ADD COLUMN synced_file_num    integer CHECK (synced_file_num >= 0),
    ADD COLUMN tasks_synced_at    timestamptz,
    ADD COLUMN files_synced_at    timestamptz,
    ADD COLUMN members_synced_at  timestamptz;

CREATE TABLE chatwork_tasks (
    -- Chatwork's task id (unique across Chatwork).
    task_id                   bigint PRIMARY KEY CHECK (task_id > 0),
    chatwork_room_id          uuid NOT NULL,
    room_id                   bigint NOT NULL,
    -- The assignee, and who assigned it.
    account_id                bigint NOT NULL,
    account_name              text NOT NULL CHECK (char_length(account_name) <= 255),
    assigned_by_account_id    bigint,
    assigned_by_account_name  text CHECK (char_length(assigned_by_account_name) <= 255),
    -- The message the task was made from, when Chatwork names one.
    message_id                text CHECK (message_id ~ '^[0-9]{1,40}$'),
    body                      text NOT NULL CHECK (char_length(body) <= 20000),
    -- `none`: no deadline (limit_time NULL); `date`: a day (limit_time is that day's end in
    -- Tokyo, as Chatwork gives it); `time`: an instant.
    limit_type                text NOT NULL CHECK (limit_type IN ('none', 'date', 'time')),
    limit_time                timestamptz,
    status                    text NOT NULL CHECK (status IN ('open', 'done')),
    -- When a sync first saw the task, and first saw it done (NULL while open).
    first_seen_at             timestamptz NOT NULL DEFAULT now(),
    done_seen_at              timestamptz,
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK ((limit_type = 'none') = (limit_time IS NULL)),
    CHECK (status = 'done' OR done_seen_at IS NULL),
    FOREIGN KEY (chatwork_room_id, room_id)
        REFERENCES chatwork_rooms (id, room_id) ON DELETE CASCADE
);
CREATE INDEX chatwork_tasks_room_idx ON chatwork_tasks (chatwork_room_id, status, limit_time);
-- A company's open tasks by deadline go through its rooms' links.
CREATE INDEX chatwork_tasks_open_idx ON chatwork_tasks (chatwork_room_id, limit_time)
    WHERE status = 'open';

CREATE TABLE chatwork_files (
    -- Chatwork's file id (unique across Chatwork).
    file_id           bigint PRIMARY KEY CHECK (file_id > 0),
    chatwork_room_id  uuid NOT NULL,
    room_id           bigint NOT NULL,
    -- Who uploaded it.
    account_id        bigint NOT NULL,
    account_name      text NOT NULL CHECK (char_length(account_name) <= 255),
    message_id        text CHECK (message_id ~ '^[0-9]{1,40}$'),
    filename          text NOT NULL CHECK (char_length(filename) BETWEEN 1 AND 1000),
    -- Bytes, as Chatwork says.
    filesize          bigint NOT NULL CHECK (filesize >= 0),
    upload_time       timestamptz NOT NULL,
    -- The copy in object storage:
    -- `pending`: not copied yet (a sync copies it, retrying with a new download URL);
    -- `stored`: copied, `storage_key` names it;
    -- `too_large`: larger than the configured cap, recorded and not copied;
    -- `failed`: a copy that cannot succeed (Chatwork refuses the file; `storage_error`).
    storage_state     text NOT NULL DEFAULT 'pending'
                      CHECK (storage_state IN ('pending', 'stored', 'too_large', 'failed')),
    storage_key       text CHECK (char_length(storage_key) <= 500),
    stored_bytes      bigint CHECK (stored_bytes >= 0),
    sha256            text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_error     text CHECK (char_length(storage_error) <= 500),
    copy_attempts     integer NOT NULL DEFAULT 0 CHECK (copy_attempts >= 0),
    stored_at         timestamptz,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((storage_state = 'stored')
           = (storage_key IS NOT NULL AND stored_at IS NOT NULL AND stored_bytes IS NOT NULL)),
    CHECK ((storage_state = 'failed') = (storage_error IS NOT NULL)),
    FOREIGN KEY (chatwork_room_id, room_id)
        REFERENCES chatwork_rooms (id, room_id) ON DELETE CASCADE
);
CREATE INDEX chatwork_files_room_idx ON chatwork_files (chatwork_room_id, upload_time DESC, file_id DESC);
CREATE INDEX chatwork_files_pending_idx ON chatwork_files (room_id) WHERE storage_state = 'pending';

CREATE TABLE chatwork_members (
    chatwork_room_id   uuid NOT NULL,
    room_id            bigint NOT NULL,
    account_id         bigint NOT NULL,
    -- `admin`, `member` or `readonly`.
    role               text NOT NULL CHECK (role IN ('admin', 'member', 'readonly')),
    name               text NOT NULL CHECK (char_length(name) <= 255),
    chatwork_id        text CHECK (char_length(chatwork_id) <= 255),
    organization_id    bigint,
    organization_name  text CHECK (char_length(organization_name) <= 255),
    department         text CHECK (char_length(department) <= 255),
    avatar_image_url   text CHECK (char_length(avatar_image_url) <= 2000),
    synced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, account_id),
    FOREIGN KEY (chatwork_room_id, room_id)
        REFERENCES chatwork_rooms (id, room_id) ON DELETE CASCADE
);
CREATE INDEX chatwork_members_organization_idx ON chatwork_members (lower(organization_name))
    WHERE organization_name IS NOT NULL;

-- A company a room's members suggest (an organization name that matches the company's
-- name): an admin accepts it (which links the room) or dismisses it; never a link made
-- silently. A dismissed suggestion is not made again.
CREATE TABLE company_room_suggestions (
    chatwork_room_id   uuid NOT NULL REFERENCES chatwork_rooms (id) ON DELETE CASCADE,
    company_id         uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    -- The members' organization name that matched.
    organization_name  text NOT NULL CHECK (char_length(organization_name) <= 255),
    -- Members of that organization in the room when suggested.
    members            integer NOT NULL CHECK (members > 0),
    status             text NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'accepted', 'dismissed')),
    decided_by         text,
    decided_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chatwork_room_id, company_id),
    CHECK ((status = 'open') = (decided_at IS NULL))
);
CREATE INDEX company_room_suggestions_open_idx ON company_room_suggestions (created_at)
    WHERE status = 'open';
