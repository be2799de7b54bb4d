-- The changes of the work a project's agreement reports read, counted by the database in the
-- transaction of each change (``qa_agreementchanges``). Told in qa/agreement_report.py; the
-- migration installs this file as it is, and a test fails when the installed functions differ
-- from it.
--
-- A rule of the database, not a hook of the services: a submission, a rework, a task made gold,
-- the admin or plain SQL count alike, and a report's fingerprint is a sum over at most 64 rows
-- of its project instead of a scan of its annotations. The triggers are per statement, over the
-- rows it changed: a statement touching many rows (a project deleted, a bulk write) counts them
-- with one write per project, never one per row.


-- Count the changes of the given projects' labels (``p_labels``) or stored rows, one per element
-- of ``p_projects``, in the row of this connection's shard: concurrent writers, each on a
-- connection of its own, rarely wait for one another.
CREATE OR REPLACE FUNCTION qa_agreement_changed(p_projects bigint[], p_labels boolean)
RETURNS void
LANGUAGE sql VOLATILE
AS $$
INSERT INTO qa_agreementchanges AS c (project_id, shard, labels, stored)
SELECT changed.project_id, pg_backend_pid() % 64,
       CASE WHEN p_labels THEN count(*) ELSE 0 END, CASE WHEN p_labels THEN 0 ELSE count(*) END
FROM unnest(p_projects) AS changed(project_id)
GROUP BY changed.project_id
ON CONFLICT (project_id, shard)
DO UPDATE SET labels = c.labels + EXCLUDED.labels, stored = c.stored + EXCLUDED.stored
$$;


-- Annotations submitted, or removed.
CREATE OR REPLACE FUNCTION qa_agreement_labels_added() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(ARRAY(SELECT came.project_id FROM came), true);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION qa_agreement_labels_removed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(ARRAY(SELECT gone.project_id FROM gone), true);
    RETURN NULL;
END;
$$;

-- Annotations resubmitted (a new payload and version) or corrected (a new version); an update
-- of their other columns alone changes no label.
CREATE OR REPLACE FUNCTION qa_agreement_labels_updated() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(
        ARRAY(SELECT came.project_id FROM came JOIN gone ON gone.id = came.id
              WHERE gone.version IS DISTINCT FROM came.version
                 OR gone.payload IS DISTINCT FROM came.payload),
        true);
    RETURN NULL;
END;
$$;

-- A submitted assignment whose work counts no more: sent back for rework, or its seat taken
-- away (the task made gold). Its submission was counted with its annotation.
CREATE OR REPLACE FUNCTION qa_agreement_assignment_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(ARRAY[OLD.project_id], true);
    RETURN NULL;
END;
$$;

-- Tasks' stored agreement or consensus written, or removed.
CREATE OR REPLACE FUNCTION qa_agreement_stored_written() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(ARRAY(SELECT came.project_id FROM came), false);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION qa_agreement_stored_removed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(ARRAY(SELECT gone.project_id FROM gone), false);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER qa_agreement_annotation_added
AFTER INSERT ON tasks_annotation REFERENCING NEW TABLE AS came
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_labels_added();

CREATE OR REPLACE TRIGGER qa_agreement_annotation_removed
AFTER DELETE ON tasks_annotation REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_labels_removed();

CREATE OR REPLACE TRIGGER qa_agreement_annotation_updated
AFTER UPDATE ON tasks_annotation REFERENCING OLD TABLE AS gone NEW TABLE AS came
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_labels_updated();

-- Per row, and only for the rare change that makes submitted work count no more: the submit's
-- own update (active to submitted), a heartbeat or a claim fire nothing.
CREATE OR REPLACE TRIGGER qa_agreement_assignment_changed
AFTER UPDATE OF status, slot_id ON tasks_assignment
FOR EACH ROW WHEN (OLD.status = 'submitted'
                   AND (OLD.status IS DISTINCT FROM NEW.status
                        OR OLD.slot_id IS DISTINCT FROM NEW.slot_id))
EXECUTE FUNCTION qa_agreement_assignment_changed();

CREATE OR REPLACE TRIGGER qa_agreement_task_agreement_added
AFTER INSERT ON qa_taskagreement REFERENCING NEW TABLE AS came
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_stored_written();

CREATE OR REPLACE TRIGGER qa_agreement_task_agreement_updated
AFTER UPDATE ON qa_taskagreement REFERENCING NEW TABLE AS came
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_stored_written();

CREATE OR REPLACE TRIGGER qa_agreement_task_agreement_removed
AFTER DELETE ON qa_taskagreement REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_stored_removed();

CREATE OR REPLACE TRIGGER qa_agreement_task_consensus_added
AFTER INSERT ON qa_taskconsensus REFERENCING NEW TABLE AS came
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_stored_written();

CREATE OR REPLACE TRIGGER qa_agreement_task_consensus_updated
AFTER UPDATE ON qa_taskconsensus REFERENCING NEW TABLE AS came
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_stored_written();

CREATE OR REPLACE TRIGGER qa_agreement_task_consensus_removed
AFTER DELETE ON qa_taskconsensus REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION qa_agreement_stored_removed();
