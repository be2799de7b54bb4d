-- The submit's locks, checks and writes, in one round trip. Told in assignment_submit
-- (tasks/services/claims.py), which validates the payload before and publishes the event after;
-- the migration installs this file as it is, and a test fails when the installed function
-- differs from it.


-- Store an annotator's validated work for an assignment, inside the caller's transaction.
--
-- Locks in the order of tasks/locks.py: a gold task's project member (its count of gold work
-- grows), the slot the assignment holds, the assignment, then the task. The state read under
-- them is the state that stands, so a retried request racing the first sees its result.
-- ``r_result``:
--   ``submitted``        stored: ``r_annotation`` is the new annotation;
--   ``resubmitted``      work sent back for rework, submitted again: the assignment is finished
--                        as below, and the caller stores the new payload as the next version of
--                        its annotation (``r_annotation``), with the locks still held;
--   ``submitted_before`` the assignment was submitted already, with ``r_annotation``: the
--                        caller compares payloads, with the locks still held;
--   ``refused``          nothing stored: the assignment was submitted, released or revoked,
--                        or its slot went to someone else (``r_holds`` false);
--   ``not_plain``        nothing stored: ``p_plain`` was asked, and this is not a plain
--                        submission.
-- ``p_plain`` asks for a plain submission only, one the call stores whole, with nothing left for
-- its transaction to do after it: a fresh submission of a regular task in a project where
-- nothing reacts to it (``p_reacts`` false, the caller's word for the project). The caller may
-- then make the call its own transaction. Gold (scored after) and a resubmission after rework
-- (stored after, as the next version) are not plain.
-- ``r_status`` is the assignment's status and ``r_holds`` whether it holds its task, as read
-- under the locks; ``r_seats``, the task's seats when this submit completed it (else null).
-- A task is complete when its last seat is submitted: the task's row is locked before its other
-- slots are read, so that when the last seats are submitted at once each waits for the others
-- to commit and the last one through sees every slot done (each statement reads what has
-- committed). Reading first would let each see the other's slot still leased.
CREATE OR REPLACE FUNCTION tasks_submit(
    p_assignment bigint, p_payload jsonb, p_active_seconds integer,
    p_duration double precision, p_now timestamptz, p_plain boolean, p_reacts boolean
) RETURNS TABLE (
    r_result text, r_annotation bigint, r_status text, r_holds boolean, r_seats integer
)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    asg record;
    slot_state text;
    gold boolean;
BEGIN
    -- Which rows to lock: a gold task's assignment holds no slot (gold has no seats). An
    -- assignment's slot, task, project and holder never change.
    SELECT a.slot_id, a.task_id, a.project_id, a.annotator_id INTO asg
    FROM tasks_assignment a WHERE a.id = p_assignment;
    gold := asg.slot_id IS NULL;
    IF p_plain AND (gold OR p_reacts) THEN
        r_result := 'not_plain'; RETURN NEXT; RETURN;
    END IF;
    IF gold THEN
        PERFORM 1 FROM tasks_projectmember m
        WHERE m.project_id = asg.project_id AND m.annotator_id = asg.annotator_id
        FOR NO KEY UPDATE;
    END IF;
    -- The slot, while the assignment still holds it.
    SELECT s.state INTO slot_state FROM tasks_slot s
    WHERE s.id = asg.slot_id AND s.assignment_id = p_assignment
    FOR NO KEY UPDATE;
    SELECT a.status, a.slot_id, a.task_id, a.project_id, a.annotator_id INTO asg
    FROM tasks_assignment a WHERE a.id = p_assignment
    FOR NO KEY UPDATE;

    -- It holds the task while its lease stands or lapsed unclaimed: the slot is still leased
    -- to it. A gold task's assignment holds no slot, and nobody else can take it over.
    r_status := asg.status;
    r_holds := gold OR COALESCE(slot_state = 'leased', false);
    SELECT n.id INTO r_annotation FROM tasks_annotation n WHERE n.assignment_id = p_assignment;
    IF FOUND AND asg.status = 'submitted' THEN
        r_result := 'submitted_before'; RETURN NEXT; RETURN;
    END IF;
    IF asg.status = 'submitted' OR asg.status = 'released' OR asg.status = 'revoked'
        OR NOT r_holds
    THEN
        r_result := 'refused'; RETURN NEXT; RETURN;
    END IF;

    IF r_annotation IS NULL THEN
        INSERT INTO tasks_annotation
            (assignment_id, task_id, project_id, annotator_id, payload, version,
             payload_version, active_seconds, duration_seconds, submitted_at)
        VALUES (p_assignment, asg.task_id, asg.project_id, asg.annotator_id, p_payload, 1, 1,
                p_active_seconds, p_duration, p_now)
        RETURNING id INTO r_annotation;
        r_result := 'submitted';
    ELSIF p_plain THEN
        r_result := 'not_plain'; RETURN NEXT; RETURN;
    ELSE
        -- Sent back for rework (its slot leased to it again): its annotation has a new version.
        r_result := 'resubmitted';
    END IF;
    UPDATE tasks_assignment SET status = 'submitted', ended_at = p_now WHERE id = p_assignment;
    IF gold THEN
        UPDATE tasks_projectmember SET gold_submitted = gold_submitted + 1
        WHERE project_id = asg.project_id AND annotator_id = asg.annotator_id;
    ELSE
        UPDATE tasks_slot SET state = 'done', lease_expires_at = NULL WHERE id = asg.slot_id;
        PERFORM 1 FROM tasks_task t WHERE t.id = asg.task_id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM tasks_slot s
                       WHERE s.task_id = asg.task_id AND s.state <> 'done') THEN
            UPDATE tasks_task SET completed_at = p_now WHERE id = asg.task_id;
            SELECT count(*) INTO r_seats FROM tasks_slot s WHERE s.task_id = asg.task_id;
        END IF;
    END IF;
    RETURN NEXT;
END;
$$;
