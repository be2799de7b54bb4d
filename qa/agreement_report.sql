-- The changes of the work a project's agreement reports read, counted by the database in the
-- transaction of each change (``qa_agreementchanges``). Told in qa/agreement_report.py; the
-- migration installs this file as it is, and a test fails when the installed functions differ
-- from it.
--
-- A rule of the database, not a hook of the services: a submission, a rework, a task made gold,
-- the admin or plain SQL count alike, and a report's fingerprint is a sum over at most 64 rows
-- of its project instead of a scan of its annotations.


-- Count one change of a project's labels and/or stored rows, in the row of this connection's
-- shard: concurrent writers, each on a connection of its own, rarely wait for one another.
CREATE OR REPLACE FUNCTION qa_agreement_changed(p_project bigint, p_labels integer, p_stored integer)
RETURNS void
LANGUAGE sql VOLATILE
AS $$
INSERT INTO qa_agreementchanges AS c (project_id, shard, labels, stored)
VALUES (p_project, pg_backend_pid() % 64, p_labels, p_stored)
ON CONFLICT (project_id, shard)
DO UPDATE SET labels = c.labels + EXCLUDED.labels, stored = c.stored + EXCLUDED.stored
$$;


-- An annotation submitted, resubmitted (a new payload and version), corrected (a new version)
-- or removed.
CREATE OR REPLACE FUNCTION qa_agreement_annotation_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(COALESCE(NEW.project_id, OLD.project_id), 1, 0);
    RETURN NULL;
END;
$$;

-- A submitted assignment whose work counts no more: sent back for rework, or its seat taken
-- away (the task made gold). Its submission was counted with its annotation.
CREATE OR REPLACE FUNCTION qa_agreement_assignment_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    asg tasks_assignment := OLD;
BEGIN
    IF asg.status = 'submitted' THEN
        PERFORM qa_agreement_changed(asg.project_id, 1, 0);
    END IF;
    RETURN NULL;
END;
$$;

-- A task's stored agreement or consensus written or removed.
CREATE OR REPLACE FUNCTION qa_agreement_stored_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(COALESCE(NEW.project_id, OLD.project_id), 0, 1);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER qa_agreement_annotation_added
AFTER INSERT OR DELETE ON tasks_annotation
FOR EACH ROW
EXECUTE FUNCTION qa_agreement_annotation_changed();

CREATE OR REPLACE TRIGGER qa_agreement_annotation_changed
AFTER UPDATE OF payload, version ON tasks_annotation
FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version OR OLD.payload IS DISTINCT FROM NEW.payload)
EXECUTE FUNCTION qa_agreement_annotation_changed();

-- Only a change of the columns that decide whether work counts fires it; the submit's own
-- update (active to submitted) is counted by its annotation's trigger.
CREATE OR REPLACE TRIGGER qa_agreement_assignment_changed
AFTER UPDATE OF status, slot_id ON tasks_assignment
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.slot_id IS DISTINCT FROM NEW.slot_id)
EXECUTE FUNCTION qa_agreement_assignment_changed();

CREATE OR REPLACE TRIGGER qa_agreement_task_agreement_changed
AFTER INSERT OR UPDATE OR DELETE ON qa_taskagreement
FOR EACH ROW
EXECUTE FUNCTION qa_agreement_stored_changed();

CREATE OR REPLACE TRIGGER qa_agreement_task_consensus_changed
AFTER INSERT OR UPDATE OR DELETE ON qa_taskconsensus
FOR EACH ROW
EXECUTE FUNCTION qa_agreement_stored_changed();
