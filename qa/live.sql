-- Live events the database writes itself, into the outbox (qa_liveevent; qa/live.py tells the
-- outbox, qa/relay.py its reader). The migration installs this file as it is, and a test fails
-- when the installed functions differ from it.
--
-- Rules of the database, like tasks/services/access.sql: a claim is one statement of PL/pgSQL
-- (tasks_claim), and access changes by a service, the admin or plain SQL alike. A trigger
-- writes the row in the changing transaction, so the event exists exactly when the change
-- does and costs no round trip. Quality owns them: tasks and workforce never name the outbox.


-- A claim inserted its assignment: staff and the annotator see the task taken. The same row
-- for a gold task as for any other (its ``data`` tells nothing of gold).
CREATE OR REPLACE FUNCTION qa_live_assignment_claimed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO qa_liveevent (organization_id, member_id, staff, type, data)
    SELECT p.organization_id, w.member_id, true, 'assignment.claimed',
           jsonb_build_object('assignment', NEW.id, 'project', NEW.project_id,
                              'task', NEW.task_id, 'annotator', NEW.annotator_id)
    FROM tasks_project p, workforce_annotator w
    WHERE p.id = NEW.project_id AND w.id = NEW.annotator_id;
    RETURN NULL;
END;
$$;

-- A member's access may have changed: the relays check that member's sockets at once. No
-- socket receives the row (``access.changed``).
CREATE OR REPLACE FUNCTION qa_live_member_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO qa_liveevent (organization_id, member_id, staff, type, data)
    VALUES (OLD.organization_id, OLD.id, false, 'access.changed', '{}');
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION qa_live_annotator_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO qa_liveevent (organization_id, member_id, staff, type, data)
    SELECT m.organization_id, m.id, false, 'access.changed', '{}'
    FROM workforce_member m WHERE m.id = NEW.member_id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION qa_live_user_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO qa_liveevent (organization_id, member_id, staff, type, data)
    SELECT m.organization_id, m.id, false, 'access.changed', '{}'
    FROM workforce_member m WHERE m.user_id = NEW.id;
    RETURN NULL;
END;
$$;

-- Only a claim's insert fires it: rows written as already submitted (a bulk load) tell nothing.
CREATE OR REPLACE TRIGGER qa_live_assignment_claimed
AFTER INSERT ON tasks_assignment
FOR EACH ROW WHEN (NEW.status = 'active')
EXECUTE FUNCTION qa_live_assignment_claimed();

-- Only a change of a column that decides access fires these, as in tasks/services/access.sql.
CREATE OR REPLACE TRIGGER qa_live_member_access
AFTER UPDATE OF role, is_active ON workforce_member
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION qa_live_member_access_changed();

CREATE OR REPLACE TRIGGER qa_live_member_removed
AFTER DELETE ON workforce_member
FOR EACH ROW
EXECUTE FUNCTION qa_live_member_access_changed();

CREATE OR REPLACE TRIGGER qa_live_annotator_access
AFTER UPDATE OF status ON workforce_annotator
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION qa_live_annotator_access_changed();

CREATE OR REPLACE TRIGGER qa_live_user_access
AFTER UPDATE OF is_active ON auth_user
FOR EACH ROW WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active)
EXECUTE FUNCTION qa_live_user_access_changed();
