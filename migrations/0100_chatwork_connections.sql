-- Chatwork connections: one per Chatwork account the team connected (OAuth 2.0 or an API
-- token), each with its tokens sealed (AES-256-GCM), its own rate budget and breaker
-- (keyed by `budget_key`), and the rooms its account is a member of
-- (docs/architecture.md, "Connections").

CREATE TABLE chatwork_connections (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind                     text NOT NULL CHECK (kind IN ('oauth', 'api_token')),
    -- The connection of `CHATWORK_API_TOKEN` (or its secret): its token is never stored,
    -- it is read from the setting at start-up, so existing deployments keep working.
    bootstrap                boolean NOT NULL DEFAULT false,
    -- From `GET /me`; unknown for the bootstrap connection until its first rooms sync.
    account_id               bigint CHECK (account_id > 0),
    account_name             text CHECK (char_length(account_name) <= 200),
    organization_id          bigint,
    organization_name        text CHECK (char_length(organization_name) <= 200),
    -- The JWT `sub` of the admin who connected it (`bootstrap` for the bootstrap one).
    connected_by             text NOT NULL CHECK (char_length(connected_by) <= 200),
    connected_at             timestamptz NOT NULL DEFAULT now(),
    -- Space-separated OAuth scopes Chatwork granted (empty for an API token).
    scopes                   text NOT NULL DEFAULT '' CHECK (char_length(scopes) <= 1000),
    status                   text NOT NULL DEFAULT 'active'
                             CHECK (status IN ('active', 'reauth_required', 'revoked', 'disabled')),
    status_changed_at        timestamptz NOT NULL DEFAULT now(),
    last_error               text CHECK (char_length(last_error) <= 500),
    -- Sealed tokens: nonce (12 bytes) then ciphertext and tag; the associated data is the
    -- connection id and the field's name, so a sealed value moved to another row or field
    -- does not open.
    access_token             bytea,
    refresh_token            bytea,
    -- Which key sealed them (`local:<fingerprint>` or the KMS key's ARN), and the data key
    -- as KMS encrypted it (NULL under a local key).
    key_id                   text,
    wrapped_key              bytea,
    access_token_expires_at  timestamptz,
    refreshed_at             timestamptz,
    -- The last time its room list was read (by a room check or a rooms sync), how many
    -- rooms it listed, and the last failure to read it.
    listed_at                timestamptz,
    rooms_listed             integer CHECK (rooms_listed >= 0),
    list_error               text CHECK (char_length(list_error) <= 500),
    -- The key of its rows in `chatwork_rate_budgets` and `chatwork_breakers`.
    budget_key               bytea NOT NULL UNIQUE CHECK (octet_length(budget_key) = 32),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (bootstrap = (connected_by = 'bootstrap')),
    CHECK (bootstrap OR status IN ('revoked', 'disabled') OR access_token IS NOT NULL),
    CHECK ((access_token IS NULL AND refresh_token IS NULL) OR key_id IS NOT NULL),
    CHECK (kind = 'oauth' OR refresh_token IS NULL)
);
-- At most one bootstrap connection.
CREATE UNIQUE INDEX chatwork_connections_bootstrap ON chatwork_connections (bootstrap) WHERE bootstrap;
-- One live connection per account (besides the bootstrap): connecting an account again
-- reconnects it.
CREATE UNIQUE INDEX chatwork_connections_account ON chatwork_connections (account_id)
    WHERE NOT bootstrap AND status <> 'revoked';

-- Which connections' accounts are members of which rooms, from each connection's room
-- list. `refused_at`: Chatwork answered 403 or 404 for that account on the room since it
-- was last listed, so the room is fetched through another member.
CREATE TABLE chatwork_room_connections (
    room_id        bigint NOT NULL REFERENCES chatwork_rooms (room_id) ON DELETE CASCADE,
    connection_id  uuid NOT NULL REFERENCES chatwork_connections (id) ON DELETE CASCADE,
    listed_at      timestamptz NOT NULL DEFAULT now(),
    refused_at     timestamptz,
    PRIMARY KEY (room_id, connection_id)
);
CREATE INDEX chatwork_room_connections_connection ON chatwork_room_connections (connection_id);

-- An OAuth round trip in progress: the `state` (stored as its SHA-256), the admin it is
-- bound to, the PKCE verifier (sealed), and its life: single use, 10 minutes.
CREATE TABLE chatwork_oauth_states (
    state_hash     bytea PRIMARY KEY CHECK (octet_length(state_hash) = 32),
    admin_sub      text NOT NULL,
    code_verifier  bytea NOT NULL,
    key_id         text NOT NULL,
    wrapped_key    bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX chatwork_oauth_states_expires ON chatwork_oauth_states (expires_at);

-- The tokens of the Chatwork webhooks a connection's account created (Chatwork allows 5
-- per account), sealed like its tokens: a delivery signed with one is believed only for
-- the rooms that account is a member of.
CREATE TABLE chatwork_connection_webhooks (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    connection_id  uuid NOT NULL REFERENCES chatwork_connections (id) ON DELETE CASCADE,
    token          bytea NOT NULL,
    key_id         text NOT NULL,
    wrapped_key    bytea,
    -- The token's SHA-256, so the same token is not added twice.
    token_hash     bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chatwork_connection_webhooks_connection ON chatwork_connection_webhooks (connection_id);
