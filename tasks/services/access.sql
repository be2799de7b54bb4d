-- Access follows people as they change: who may hold a lease, and the rule that ends the leases
-- of whoever no longer may. Told in tasks/services/claims.py; the migration installs this file
-- as it is, and a test fails when the installed functions differ from it.
--
-- A rule of the database, not a hook of the services: the admin, a bulk update and plain SQL
-- end access as surely as a service does, and each of them ends the leases in its own
-- transaction. Nothing else has to remember it.


-- The projects an annotator may hold a lease in now: those where their account is active; their
-- membership of the organization is active, as an annotator; their annotator profile is active
-- (not suspended or offboarded); their membership of the project is active, as an annotator.
-- The claim grants leases by it and the rule below ends them by it. Qualification (skill
-- level, certifications) is the claim's to check: a lease already held outlives a change of
-- it, as it outlives a change of the project's settings.
-- Plain SQL returning rows, stable and not strict, so the planner inlines it into the queries
-- that call it (a scalar function holding a subquery would be planned again at every call).
CREATE OR REPLACE FUNCTION tasks_lease_projects(p_annotator bigint)
RETURNS TABLE (project_id bigint)
LANGUAGE sql STABLE
AS $$
SELECT m.project_id
FROM workforce_annotator w
JOIN workforce_member wm ON wm.id = w.member_id
JOIN auth_user u ON u.id = wm.user_id
JOIN tasks_projectmember m ON m.annotator_id = w.id
WHERE w.id = p_annotator
  AND w.status = 'active'
  AND wm.is_active AND wm.role = 'annotator'
  AND u.is_active
  AND m.is_active AND m.role = 'annotator'
$$;


-- End every lease the annotators hold where they may no longer hold it; return how many.
--
-- A lease ends as a release does (the slot opens for others at once), and its assignment ends
-- ``revoked`` at this transaction's time. A lease that lapsed is ended too while its slot still
-- names it: its holder could otherwise heartbeat it back to life.
CREATE OR REPLACE FUNCTION tasks_leases_end_without_access(p_annotators bigint[])
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    ended integer;
    gold integer;
BEGIN
    -- The annotators' rows first, in id order (the order of tasks/locks.py: annotator, slot,
    -- assignment). A claim in flight holds its annotator's row until it commits; waiting for
    -- it here means its new lease is seen below and ended, and a claim after this waits for
    -- this transaction and then reads the access it changed.
    PERFORM 1 FROM workforce_annotator w
    WHERE w.id = ANY(p_annotators) ORDER BY w.id FOR NO KEY UPDATE;
    WITH gone AS (
        UPDATE tasks_slot s SET state = 'open', assignment_id = NULL, lease_expires_at = NULL
        FROM tasks_assignment a
        WHERE a.annotator_id = ANY(p_annotators)
          AND (a.status = 'active' OR a.status = 'expired')
          AND s.id = a.slot_id AND s.assignment_id = a.id AND s.state = 'leased'
          AND NOT EXISTS (SELECT 1 FROM tasks_lease_projects(a.annotator_id) lp
                          WHERE lp.project_id = a.project_id)
        RETURNING a.id
    )
    UPDATE tasks_assignment SET status = 'revoked', ended_at = now()
    WHERE id IN (SELECT gone.id FROM gone);
    GET DIAGNOSTICS ended = ROW_COUNT;
    -- Gold tasks' leases hold no slot: they end alone.
    UPDATE tasks_assignment a SET status = 'revoked', ended_at = now()
    WHERE a.annotator_id = ANY(p_annotators) AND a.slot_id IS NULL
      AND (a.status = 'active' OR a.status = 'expired')
      AND NOT EXISTS (SELECT 1 FROM tasks_lease_projects(a.annotator_id) lp
                      WHERE lp.project_id = a.project_id);
    GET DIAGNOSTICS gold = ROW_COUNT;
    RETURN ended + gold;
END;
$$;


-- One trigger function per table that decides access, each naming whose leases to look at.

CREATE OR REPLACE FUNCTION tasks_annotator_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM tasks_leases_end_without_access(ARRAY[NEW.id]);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION tasks_member_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM tasks_leases_end_without_access(
        ARRAY(SELECT w.id FROM workforce_annotator w WHERE w.member_id = NEW.id));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION tasks_user_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM tasks_leases_end_without_access(
        ARRAY(SELECT w.id FROM workforce_annotator w
              JOIN workforce_member wm ON wm.id = w.member_id
              WHERE wm.user_id = NEW.id));
    RETURN NULL;
END;
$$;

-- For an update and a delete alike: the row as it was names the annotator.
CREATE OR REPLACE FUNCTION tasks_project_member_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM tasks_leases_end_without_access(ARRAY[OLD.annotator_id]);
    RETURN NULL;
END;
$$;

-- Only a change of a column that decides access fires them: a login (``last_login``), a
-- profile edit or a save of the same values costs nothing.
CREATE OR REPLACE TRIGGER tasks_annotator_access
AFTER UPDATE OF status ON workforce_annotator
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION tasks_annotator_access_changed();

CREATE OR REPLACE TRIGGER tasks_member_access
AFTER UPDATE OF role, is_active ON workforce_member
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION tasks_member_access_changed();

CREATE OR REPLACE TRIGGER tasks_user_access
AFTER UPDATE OF is_active ON auth_user
FOR EACH ROW WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION tasks_user_access_changed();

CREATE OR REPLACE TRIGGER tasks_project_member_access
AFTER UPDATE OF role, is_active ON tasks_projectmember
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION tasks_project_member_access_changed();

CREATE OR REPLACE TRIGGER tasks_project_member_removed
AFTER DELETE ON tasks_projectmember
FOR EACH ROW
EXECUTE FUNCTION tasks_project_member_access_changed();
