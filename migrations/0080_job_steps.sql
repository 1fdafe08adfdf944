-- A job may grow: a step of its own (a messages sync's room check) plans the rest of its
-- items while it runs, so the job a person starts is the whole sync. See
-- docs/architecture.md, "Jobs".

-- A step is an item of the job's own work on itself, not a unit of what it was asked
-- to do: it is not counted in `total_items`/`open_items` (what the API shows as the
-- job's rooms or items) but in `open_steps`, and a job finishes only when both reach 0.
ALTER TABLE job_items
    ADD COLUMN step boolean NOT NULL DEFAULT false;

ALTER TABLE jobs
    ADD COLUMN open_steps integer NOT NULL DEFAULT 0 CHECK (open_steps >= 0);

-- Ends the open items `p_keys` of job `p_job_id` in the terminal state `p_status`, with
-- their fetched count, result and error (a failure without an error of its own keeps the
-- last retry's), and decrements the job's open counts in the same statement under the
-- job row's lock, so exactly one end sees them reach 0. Items that already ended are
-- left alone: a repeated call changes nothing. Every path that ends items calls it: the
-- job core (`jobs::store::end_items`) and statements that store an item's work and end
-- it at once (the messages sync's write). A NULL `p_job_id` ends nothing.
-- One row: how many items this call ended, and the job's open items, open steps and
-- status afterwards (NULL when nothing ended).
CREATE FUNCTION cwsync_end_items(p_job_id uuid, p_keys text[], p_status job_item_status,
                                 p_fetched integer, p_result jsonb, p_error jsonb)
RETURNS TABLE (ended bigint, open_items integer, open_steps integer, job_status job_status)
LANGUAGE sql VOLATILE
AS $$
    WITH locked AS (
        SELECT id FROM jobs WHERE id = p_job_id FOR UPDATE
    ), ended AS (
        UPDATE job_items
           SET status = p_status, fetched = p_fetched, result = p_result,
               error = CASE WHEN p_status = 'failed' THEN coalesce(p_error, error)
                            ELSE p_error END,
               finished_at = now(), updated_at = now()
         WHERE job_id = (SELECT id FROM locked) AND item_key = ANY(p_keys)
           AND status IN ('pending', 'queued', 'processing')
     RETURNING step
    ), job AS (
        UPDATE jobs
           SET open_items = jobs.open_items - (SELECT count(*) FROM ended WHERE NOT step)::int,
               open_steps = jobs.open_steps - (SELECT count(*) FROM ended WHERE step)::int,
               updated_at = now()
         WHERE id = p_job_id AND EXISTS (SELECT 1 FROM ended)
     RETURNING jobs.open_items, jobs.open_steps, jobs.status
    )
    SELECT (SELECT count(*) FROM ended),
           (SELECT j.open_items FROM job j),
           (SELECT j.open_steps FROM job j),
           (SELECT j.status FROM job j)
$$;
