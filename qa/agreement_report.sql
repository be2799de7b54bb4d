-- The changes of the work a project's agreement reports read, counted by the database in the
-- transaction of each change (``qa_agreementchanges``). Told in qa/agreement_report.py; the
-- migration installs this file as it is, and a test fails when the installed functions differ
-- from it.
--
-- A rule of the database, not a hook of the services: a submission, a rework, a task made gold,
-- the admin or plain SQL count alike, and a report's fingerprint is a sum over at most 64 rows
-- of its project instead of a scan of its annotations.


-- Count a change of a project's labels (``p_labels``) or of its stored rows, once per
-- statement: the fingerprint needs every statement that changes them to move the sum, not a
-- count of rows; and a statement changing many rows (a project deleted, a bulk write) updates
-- the counter once, not once per row (each update of one row in one transaction lengthens the
-- chain of versions the next one walks). ``*_xact`` and ``*_at`` name the last statement
-- counted: its transaction and its start (statements of one connection start at distinct
-- moments; those a function runs share its caller's). In the row of this connection's shard:
-- concurrent writers, each on a connection of its own, rarely wait for one another.
CREATE OR REPLACE FUNCTION qa_agreement_changed(p_project bigint, p_labels boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_xact bigint := pg_current_xact_id()::text::bigint;
    v_at timestamptz := statement_timestamp();
    v_shard smallint := pg_backend_pid() % 64;
BEGIN
    IF p_labels THEN
        INSERT INTO qa_agreementchanges AS c
            (project_id, shard, labels, stored, labels_xact, labels_at)
        VALUES (p_project, v_shard, 1, 0, v_xact, v_at)
        ON CONFLICT (project_id, shard)
        DO UPDATE SET labels = c.labels + 1, labels_xact = v_xact, labels_at = v_at
        WHERE (c.labels_xact, c.labels_at) IS DISTINCT FROM (v_xact, v_at);
    ELSE
        INSERT INTO qa_agreementchanges AS c
            (project_id, shard, labels, stored, stored_xact, stored_at)
        VALUES (p_project, v_shard, 0, 1, v_xact, v_at)
        ON CONFLICT (project_id, shard)
        DO UPDATE SET stored = c.stored + 1, stored_xact = v_xact, stored_at = v_at
        WHERE (c.stored_xact, c.stored_at) IS DISTINCT FROM (v_xact, v_at);
    END IF;
END;
$$;


-- An annotation submitted, resubmitted (a new payload and version), corrected (a new version)
-- or removed.
CREATE OR REPLACE FUNCTION qa_agreement_labels_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(COALESCE(NEW.project_id, OLD.project_id), true);
    RETURN NULL;
END;
$$;

-- Tasks' stored agreement or consensus written, or removed.
CREATE OR REPLACE FUNCTION qa_agreement_stored_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM qa_agreement_changed(COALESCE(NEW.project_id, OLD.project_id), false);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER qa_agreement_annotation_added
AFTER INSERT OR DELETE ON tasks_annotation
FOR EACH ROW EXECUTE FUNCTION qa_agreement_labels_changed();

CREATE OR REPLACE TRIGGER qa_agreement_annotation_changed
AFTER UPDATE OF payload, version ON tasks_annotation
FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version OR OLD.payload IS DISTINCT FROM NEW.payload)
EXECUTE FUNCTION qa_agreement_labels_changed();

-- A submitted assignment whose work counts no more: sent back for rework, or its seat taken
-- away (the task made gold); its submission was counted with its annotation. Only that rare
-- change calls the function: the submit's own update, a heartbeat or a claim call nothing.
CREATE OR REPLACE TRIGGER qa_agreement_assignment_changed
AFTER UPDATE OF status, slot_id ON tasks_assignment
FOR EACH ROW WHEN (OLD.status = 'submitted'
                   AND (OLD.status IS DISTINCT FROM NEW.status
                        OR OLD.slot_id IS DISTINCT FROM NEW.slot_id))
EXECUTE FUNCTION qa_agreement_labels_changed();

CREATE OR REPLACE TRIGGER qa_agreement_task_agreement_changed
AFTER INSERT OR UPDATE OR DELETE ON qa_taskagreement
FOR EACH ROW EXECUTE FUNCTION qa_agreement_stored_changed();

CREATE OR REPLACE TRIGGER qa_agreement_task_consensus_changed
AFTER INSERT OR UPDATE OR DELETE ON qa_taskconsensus
FOR EACH ROW EXECUTE FUNCTION qa_agreement_stored_changed();
