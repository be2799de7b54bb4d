-- The audit log is append-only in the database itself: no UPDATE or DELETE of an audit event
-- gets through, whatever code or console sends it. ``AuditEvent.save`` and ``delete`` refuse
-- too, with a clearer message, before a statement is sent.
CREATE OR REPLACE FUNCTION workforce_audit_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;

CREATE OR REPLACE TRIGGER workforce_auditevent_append_only
    BEFORE UPDATE OR DELETE ON workforce_auditevent
    FOR EACH ROW EXECUTE FUNCTION workforce_audit_append_only();
