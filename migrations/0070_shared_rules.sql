-- Two rules that statements of different modules apply, written once (a review of
-- issue 17 and 19's code found each copied): how many of a room's messages cwsync has
-- not seen, and how a consumer starts a job's item.

-- Messages Chatwork counts in a room that no fetch and no webhook brought us:
-- `message_num` (as Chatwork or the last check reported it) less `message_num` at the
-- last fetch, less the messages webhooks stored since; never below zero. The room check
-- ranks rooms by it, the rooms list and the status route report it. A plain SQL
-- expression, so the planner inlines it.
CREATE FUNCTION cwsync_unseen(p_message_num integer, p_synced_message_num integer,
                              p_webhook_messages integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(coalesce(p_message_num, 0) - coalesce(p_synced_message_num, 0)
                    - coalesce(p_webhook_messages, 0), 0)
$$;

-- Starts item `p_item_key` of job `p_job_id` (see `jobs::store::begin_item`): the job
-- becomes `processing` when it is `queued` or `processing`, and then the item too (one
-- more attempt); when the job is no longer open (canceled, ended), an item still open
-- is canceled instead. One row: whether the job was open, the attempt's number when the
-- item started (NULL otherwise), the item's result as it was (a write that did not end
-- its item leaves one), and whether the item exists at all.
-- Statements that fold the start into a read of their own call it once, in a CTE.
CREATE FUNCTION cwsync_begin_item(p_job_id uuid, p_item_key text)
RETURNS TABLE (job_open boolean, attempts integer, result jsonb, item_exists boolean)
LANGUAGE sql VOLATILE
AS $$
    WITH job AS (
        UPDATE jobs
           SET status = 'processing', started_at = coalesce(started_at, now()),
               updated_at = now()
         WHERE id = p_job_id AND status IN ('queued', 'processing')
     RETURNING id
    ), item AS (
        UPDATE job_items
           SET status = 'processing', attempts = attempts + 1,
               started_at = coalesce(started_at, now()), updated_at = now()
         WHERE job_id = p_job_id AND item_key = p_item_key
           AND status IN ('pending', 'queued', 'processing')
           AND EXISTS (SELECT 1 FROM job)
     RETURNING attempts, result
    ), closed AS (
        -- Runs though nothing reads it: a data-modifying CTE always runs to completion.
        UPDATE job_items
           SET status = 'canceled', finished_at = now(), updated_at = now()
         WHERE job_id = p_job_id AND item_key = p_item_key
           AND status IN ('pending', 'queued', 'processing')
           AND NOT EXISTS (SELECT 1 FROM job)
    )
    SELECT EXISTS (SELECT 1 FROM job),
           (SELECT attempts FROM item),
           (SELECT result FROM item),
           EXISTS (SELECT 1 FROM job_items i
                    WHERE i.job_id = p_job_id AND i.item_key = p_item_key)
$$;
