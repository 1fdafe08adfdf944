-- The rate budget's reserve rolls the window over when its reset lies further ahead than
-- any answer can put it (two windows and a lease), as it does once the reset has passed:
-- a row left that far ahead (by an answer believed before answers were bounded, or by
-- hand) would hold every request back with no answer to correct it. Otherwise the
-- function of 0050, unchanged (`shared/src/chatwork/budget.rs`, "Bounds").

CREATE OR REPLACE FUNCTION cwsync_budget_reserve(p_token bytea, p_lease float8, p_window float8)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    granted bigint;
BEGIN
    -- A reset further ahead than any answer can leave it counts as passed. The row lock
    -- this takes is held to the end of the caller's transaction, so the statement below
    -- sees the row as left here.
    UPDATE chatwork_rate_budgets
       SET reset_at = now()
     WHERE token_hash = p_token
       AND reset_at > now() + make_interval(secs => 2 * p_window + p_lease);
    INSERT INTO chatwork_rate_budgets AS b
        (token_hash, limit_count, remaining, reset_at, limit_known, window_id,
         in_flight, carried, last_grant_at)
    -- The probe: one request until a response reports the real limit.
    VALUES (p_token, 1, 0, now() + make_interval(secs => p_lease), false, 1, 1, 0, now())
    ON CONFLICT (token_hash) DO UPDATE SET
        window_id = b.window_id + CASE WHEN b.reset_at <= now() THEN 1 ELSE 0 END,
        prev_server_reset = CASE WHEN b.reset_at <= now()
            THEN b.server_reset ELSE b.prev_server_reset END,
        server_reset = CASE WHEN b.reset_at <= now() THEN NULL ELSE b.server_reset END,
        carried = CASE WHEN b.reset_at <= now()
            THEN LEAST(
                CASE WHEN b.last_grant_at > now() - make_interval(secs => p_lease)
                     THEN b.in_flight ELSE 0 END,
                b.limit_count - 1)
            ELSE b.carried END,
        in_flight = CASE WHEN b.reset_at <= now() THEN 1 ELSE b.in_flight + 1 END,
        remaining = CASE WHEN b.reset_at <= now()
            THEN b.limit_count - 1 - LEAST(
                CASE WHEN b.last_grant_at > now() - make_interval(secs => p_lease)
                     THEN b.in_flight ELSE 0 END,
                b.limit_count - 1)
            ELSE b.remaining - 1 END,
        reset_at = CASE WHEN b.reset_at > now() THEN b.reset_at
            WHEN b.limit_known THEN now() + make_interval(secs => p_window)
            ELSE now() + make_interval(secs => p_lease) END,
        last_grant_at = now(),
        updated_at = now()
    WHERE b.reset_at <= now() OR b.remaining > 0
    RETURNING b.window_id INTO granted;
    RETURN granted;
END
$$;
