-- What the status page's charts draw besides the room checks (which `room_checks` holds
-- already, one row per check): per minute, the webhook deliveries by outcome and the gaps
-- found. One row per minute whatever the number of rooms, so a day is at most 1,440 rows.
CREATE TABLE activity_minutes (
    minute           timestamptz PRIMARY KEY CHECK (minute = date_trunc('minute', minute)),
    -- Webhook deliveries: a message stored (or already on file); signed but nothing to
    -- store; refused (signature missing or wrong); storing failed. Each process adds its
    -- counts at most every few seconds (see `cwsync::history`).
    webhook_stored   integer NOT NULL DEFAULT 0 CHECK (webhook_stored >= 0),
    webhook_ignored  integer NOT NULL DEFAULT 0 CHECK (webhook_ignored >= 0),
    webhook_refused  integer NOT NULL DEFAULT 0 CHECK (webhook_refused >= 0),
    webhook_failed   integer NOT NULL DEFAULT 0 CHECK (webhook_failed >= 0),
    -- Gaps found by fetches (a room with more new messages than one request returns),
    -- and the messages they missed by estimate.
    gaps             integer NOT NULL DEFAULT 0 CHECK (gaps >= 0),
    gap_missed       bigint NOT NULL DEFAULT 0 CHECK (gap_missed >= 0)
);

-- A fetch that finds a gap sets the room's `gap_detected_at`; each such change counts in
-- its minute, so that every gap is in the history, not only each room's last one.
CREATE FUNCTION cwsync_count_gap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activity_minutes AS a (minute, gaps, gap_missed)
    VALUES (date_trunc('minute', NEW.gap_detected_at), 1, coalesce(NEW.gap_missed_estimate, 0))
    ON CONFLICT (minute) DO UPDATE
       SET gaps = a.gaps + 1, gap_missed = a.gap_missed + EXCLUDED.gap_missed;
    RETURN NULL;
END
$$;

CREATE TRIGGER chatwork_rooms_count_gap
    AFTER UPDATE OF gap_detected_at ON chatwork_rooms
    FOR EACH ROW
    WHEN (NEW.gap_detected_at IS NOT NULL
          AND NEW.gap_detected_at IS DISTINCT FROM OLD.gap_detected_at)
    EXECUTE FUNCTION cwsync_count_gap();
