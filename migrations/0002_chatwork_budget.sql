-- The shared rate budget of a Chatwork token needs more than a counter to stay under
-- Chatwork's limit with many processes and requests in flight (the design is in the
-- module doc of `shared/src/chatwork/budget.rs`).
ALTER TABLE chatwork_rate_budgets
    -- False until a response's headers told us the limit: meanwhile `limit_count` is the
    -- one-request probe the budget starts with.
    ADD COLUMN limit_known        boolean NOT NULL DEFAULT false,
    -- Our number for the current window; a reservation remembers it, so that its
    -- response can tell which window it was taken from.
    ADD COLUMN window_id          bigint NOT NULL DEFAULT 1,
    -- `x-ratelimit-reset` (epoch seconds) of the current window as Chatwork reported it;
    -- NULL until a response of this window arrived.
    ADD COLUMN server_reset       bigint,
    -- The same for the previous window, to tell late responses of that window apart.
    ADD COLUMN prev_server_reset  bigint,
    -- Requests reserved in the current window whose response has not been recorded.
    ADD COLUMN in_flight          integer NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    -- Requests reserved in the previous window that were still in flight when it ended:
    -- they may be counted by Chatwork in this one.
    ADD COLUMN carried            integer NOT NULL DEFAULT 0 CHECK (carried >= 0),
    ADD COLUMN last_grant_at      timestamptz;
