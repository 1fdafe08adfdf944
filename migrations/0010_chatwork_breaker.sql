-- The outage breaker of a Chatwork token, shared by every process that uses the token
-- (the design is in the module doc of `shared/src/chatwork/breaker.rs`). One row per
-- token, keyed like the rate budget by the token's SHA-256; no row: closed, no failure.
CREATE TABLE chatwork_breakers (
    token_hash       bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    -- Failures (5xx, timeouts, no connection) since the last success, counted only while
    -- each came within the failure window of the one before.
    failures         integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure_at  timestamptz,
    -- Set while the breaker is open: requests stop but one probe per interval.
    opened_at        timestamptz,
    -- While open: when the next probe may be sent (claimed by moving it forward).
    next_probe_at    timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((opened_at IS NULL) = (next_probe_at IS NULL))
);
