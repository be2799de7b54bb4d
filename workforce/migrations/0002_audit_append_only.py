"""Make the audit log append-only in the database itself, on PostgreSQL."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION workforce_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER workforce_auditevent_append_only
    BEFORE UPDATE OR DELETE ON workforce_auditevent
    FOR EACH ROW EXECUTE FUNCTION workforce_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS workforce_auditevent_append_only ON workforce_auditevent;
DROP FUNCTION IF EXISTS workforce_audit_append_only();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("workforce", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
