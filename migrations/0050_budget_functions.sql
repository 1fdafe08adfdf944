-- The Chatwork rate budget's two changes (issue 19: fewer round trips) as functions, so
-- that the statements a messages sync already runs can take a reservation (the item's
-- first read) and record an answer (the write) without a statement of their own, while
-- the budget's rules stay written once. `shared/src/chatwork/budget.rs` explains them;
-- the SQL is the one it ran before, unchanged but for `p_sent` (a reservation given back
-- unused returns its unit).

-- Takes one unit of the budget of `p_token` (see RateBudget::try_reserve): the
-- reservation's window id, or NULL when none is left before the reset.
CREATE FUNCTION cwsync_budget_reserve(p_token bytea, p_lease float8, p_window float8)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    granted bigint;
BEGIN
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

-- Ends a reservation of window `p_grant_window` (see RateBudget::record): with the
-- answer's rate headers (all NULL when no usable headers came), whether it was a 429,
-- and whether the request was sent at all.
CREATE FUNCTION cwsync_budget_record(
    p_token bytea, p_grant_window bigint, p_limit int4, p_remaining int4, p_reset int8,
    p_date int8, p_margin float8, p_refused boolean, p_sent boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    WITH input AS (
        SELECT p_grant_window AS grant_window,
               p_limit AS lim,
               -- A 429 leaves nothing, whatever its header says.
               CASE WHEN p_refused THEN 0 ELSE p_remaining END AS rem,
               p_reset AS reset,
               p_refused AS refused,
               p_sent AS sent,
               -- When Chatwork's window ends, on the database's clock (budget.rs).
               CASE WHEN p_reset IS NULL THEN NULL
                    WHEN p_date IS NULL THEN to_timestamp(p_reset)
                    ELSE now() + make_interval(secs => (p_reset - p_date)::float8)
               END + make_interval(secs => p_margin) AS est
    )
    UPDATE chatwork_rate_budgets AS b
    SET (window_id, prev_server_reset, server_reset, limit_count, limit_known,
         remaining, reset_at, in_flight, carried, updated_at) = (
        SELECT
            CASE k.kind WHEN 'move' THEN b.window_id + 1 ELSE b.window_id END,
            CASE k.kind WHEN 'move' THEN b.server_reset ELSE b.prev_server_reset END,
            CASE WHEN k.kind IN ('adopt', 'move', 'spent') THEN i.reset
                 ELSE b.server_reset END,
            CASE WHEN k.kind IN ('adopt', 'move', 'same', 'spent', 'spent_carried')
                 THEN GREATEST(i.lim, 1)
                 ELSE b.limit_count END,
            CASE WHEN k.kind IN ('adopt', 'move', 'same', 'spent', 'spent_carried')
                 THEN true
                 ELSE b.limit_known END,
            CASE k.kind
                WHEN 'spent' THEN 0
                WHEN 'spent_carried' THEN 0
                WHEN 'adopt' THEN LEAST(
                    GREATEST(i.lim, 1),
                    CASE WHEN NOT b.limit_known OR i.rem < b.remaining
                         THEN GREATEST(i.rem - (b.in_flight - 1) - b.carried, 0)
                         ELSE b.remaining END)
                WHEN 'move' THEN LEAST(
                    GREATEST(i.lim, 1),
                    GREATEST(i.rem - (b.in_flight - 1), 0))
                WHEN 'same' THEN LEAST(
                    GREATEST(i.lim, 1),
                    CASE WHEN i.rem < b.remaining
                         THEN GREATEST(i.rem - (b.in_flight - 1) - b.carried, 0)
                         ELSE b.remaining END)
                WHEN 'blind' THEN CASE WHEN b.limit_known THEN b.remaining
                                       ELSE LEAST(b.remaining + 1, b.limit_count) END
                -- Never sent: its unit is whole again.
                WHEN 'unused' THEN LEAST(b.remaining + 1, b.limit_count)
                -- Only a unit that was taken for it can come back.
                WHEN 'carried_old' THEN CASE WHEN b.carried > 0
                    THEN LEAST(b.remaining + 1, b.limit_count)
                    ELSE b.remaining END
                ELSE b.remaining
            END,
            CASE WHEN k.kind IN ('adopt', 'move') THEN GREATEST(i.est, now())
                 WHEN k.kind = 'same' THEN LEAST(b.reset_at, GREATEST(i.est, now()))
                 -- Spent until the reset the 429 reports: Chatwork's word over the
                 -- row's, earlier or later, unless it confirms the row's window.
                 WHEN k.kind IN ('spent', 'spent_carried') THEN CASE
                     WHEN b.server_reset IS NOT NULL
                          AND abs(i.reset - b.server_reset) <= 1
                     THEN LEAST(b.reset_at, GREATEST(i.est, now()))
                     ELSE GREATEST(i.est, now()) END
                 ELSE b.reset_at END,
            CASE WHEN k.kind IN ('adopt', 'same', 'spent', 'blind', 'unused')
                      THEN GREATEST(b.in_flight - 1, 0)
                 WHEN k.kind = 'move' THEN 0
                 ELSE b.in_flight END,
            -- As many as `remaining` was lowered for (none after a 429).
            CASE WHEN k.kind = 'move'
                      THEN LEAST(GREATEST(b.in_flight - 1, 0), GREATEST(i.rem, 0))
                 WHEN k.kind IN ('carried', 'carried_old', 'spent_carried')
                      THEN GREATEST(b.carried - 1, 0)
                 ELSE b.carried END,
            now()
        FROM (SELECT CASE
            -- Fresh: sent in the row's current window and answered now.
            WHEN i.grant_window = b.window_id THEN CASE
                WHEN NOT i.sent THEN 'unused'
                WHEN i.reset IS NULL OR i.lim IS NULL OR i.rem IS NULL THEN 'blind'
                -- One second of slack: a reset reported for the same window may be
                -- rounded differently from one response to the next.
                WHEN i.refused AND (b.server_reset IS NULL
                                    OR abs(i.reset - b.server_reset) <= 1) THEN 'spent'
                WHEN b.server_reset IS NULL OR NOT b.limit_known THEN 'adopt'
                -- Chatwork counts in another window than the row's, later or
                -- earlier (its window changed, or the row was wrong): move there.
                WHEN abs(i.reset - b.server_reset) > 1 THEN 'move'
                ELSE 'same' END
            -- Late: a request of the previous window, still on its way at the
            -- roll-over. Only a 429 about the current window is news.
            WHEN i.grant_window = b.window_id - 1 THEN CASE
                WHEN i.refused AND b.server_reset IS NOT NULL
                     AND abs(i.reset - b.server_reset) <= 1 THEN 'spent_carried'
                WHEN i.reset IS NOT NULL AND b.prev_server_reset IS NOT NULL
                     AND abs(i.reset - b.prev_server_reset) <= 1 THEN 'carried_old'
                ELSE 'carried' END
            ELSE 'old'
        END AS kind) AS k
    )
    FROM input AS i
    WHERE b.token_hash = p_token;
END
$$;
