"""Lapsed leases are found through their slots, so assignments keep no lease index.

Each claim wrote an entry into ``assignment_lease_idx`` at its rightmost leaf page, and one into
the project index at the same leaf as every other claim of the project. The expiry job now reads
``slot_leased_idx``; a claim that takes over a lapsed lease records its holder as expired itself
(both in ``tasks_claim`` and in the Python steps for SQLite).
"""

import django.db.models.deletion
from django.db import migrations, models

CREATE = r"""
CREATE OR REPLACE FUNCTION tasks_claim(p_annotator bigint, p_project bigint, p_now timestamptz)
RETURNS TABLE (
    r_outcome text, r_status text, r_assignment bigint, r_task bigint, r_data jsonb,
    r_project bigint, r_name text, r_kind text, r_instructions text, r_schema jsonb,
    r_expires timestamptz
)
LANGUAGE plpgsql VOLATILE
-- Plans use the indexes even when made while a table was small (migration 0005).
SET enable_seqscan = off
AS $$
DECLARE
    me record;
    live_total bigint;
    live_by_project jsonb;
    cand record;
    picked record;
    found_candidate boolean := false;
BEGIN
    -- Serialises this annotator's claims so their limits hold; nobody else's claims wait.
    SELECT w.status, w.max_concurrent_tasks INTO me
    FROM workforce_annotator w WHERE w.id = p_annotator FOR UPDATE;
    IF NOT FOUND THEN
        r_outcome := 'not_found'; RETURN NEXT; RETURN;
    END IF;
    r_status := me.status;
    IF me.status <> 'active' THEN
        r_outcome := 'not_active'; RETURN NEXT; RETURN;
    END IF;
    -- The annotator's unexpired leases, per project, in one pass.
    SELECT COALESCE(SUM(n), 0), COALESCE(jsonb_object_agg(project_id, n), '{}')
    INTO live_total, live_by_project
    FROM (SELECT a.project_id, COUNT(*) AS n FROM tasks_assignment a
          WHERE a.annotator_id = p_annotator AND a.status = 'active'
            AND a.lease_expires_at > p_now
          GROUP BY a.project_id) AS live;
    IF live_total >= me.max_concurrent_tasks THEN
        r_outcome := 'at_limit'; RETURN NEXT; RETURN;
    END IF;

    FOR cand IN
        SELECT p.id, p.lease_seconds, p.name, p.kind, p.instructions, p.label_schema,
            COALESCE((SELECT k.level FROM workforce_annotatorskill k
                      WHERE k.annotator_id = p_annotator AND k.skill = p.kind), -1)
                >= p.required_skill_level AS skilled,
            -- Certifications in force: as CertificationQuerySet.in_force.
            NOT EXISTS (
                SELECT 1 FROM tasks_project_required_domains rd
                WHERE rd.project_id = p.id AND NOT EXISTS (
                    SELECT 1 FROM workforce_certification c
                    WHERE c.annotator_id = p_annotator AND c.domain_id = rd.domain_id
                      AND c.status = 'active'
                      AND (c.expires_at IS NULL OR c.expires_at > p_now))) AS certified,
            COALESCE((live_by_project ->> p.id::text)::bigint, 0)
                < p.max_concurrent_tasks AS has_room
        FROM tasks_projectmember m
        JOIN tasks_project p ON p.id = m.project_id
        WHERE m.annotator_id = p_annotator AND m.is_active AND m.role = 'annotator'
          AND p.status = 'active' AND (p_project IS NULL OR p.id = p_project)
        ORDER BY p.priority DESC, p.deadline ASC NULLS LAST, p.id
    LOOP
        found_candidate := true;
        CONTINUE WHEN NOT (cand.skilled AND cand.certified AND cand.has_room);
        -- A lapsed lease first (its task started earliest), then the best open slot:
        -- tasks others started (higher seats), task priority, age. Rows other claimers
        -- hold are skipped, never waited for.
        SELECT s.id, s.task_id, s.seat, s.assignment_id AS previous INTO picked FROM tasks_slot s
        WHERE s.project_id = cand.id AND s.state = 'leased' AND s.lease_expires_at <= p_now
          AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                          WHERE a.task_id = s.task_id AND a.annotator_id = p_annotator)
        ORDER BY s.lease_expires_at
        LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            SELECT s.id, s.task_id, s.seat, NULL::bigint AS previous INTO picked FROM tasks_slot s
            WHERE s.project_id = cand.id AND s.state = 'open'
              AND NOT EXISTS (SELECT 1 FROM tasks_assignment a
                              WHERE a.task_id = s.task_id AND a.annotator_id = p_annotator)
            ORDER BY s.seat DESC, s.task_priority DESC, s.task_id
            LIMIT 1 FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
        END IF;
        r_expires := p_now + make_interval(secs => cand.lease_seconds);
        INSERT INTO tasks_assignment
            (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
        VALUES (picked.task_id, picked.id, cand.id, p_annotator, 'active', p_now, r_expires)
        RETURNING id INTO r_assignment;
        UPDATE tasks_slot SET state = 'leased', assignment_id = r_assignment,
            lease_expires_at = r_expires
        WHERE id = picked.id;
        -- A lapsed lease taken over: its holder's assignment ends here.
        IF picked.previous IS NOT NULL THEN
            UPDATE tasks_assignment SET status = 'expired'
            WHERE id = picked.previous AND status = 'active';
        END IF;
        -- The next seat opens once this one is taken.
        UPDATE tasks_slot SET state = 'open'
        WHERE task_id = picked.task_id AND seat = picked.seat + 1 AND state = 'waiting';
        SELECT t.data INTO r_data FROM tasks_task t WHERE t.id = picked.task_id;
        r_outcome := 'claimed';
        r_task := picked.task_id;
        r_project := cand.id;
        r_name := cand.name;
        r_kind := cand.kind;
        r_instructions := cand.instructions;
        r_schema := cand.label_schema;
        RETURN NEXT;
        RETURN;
    END LOOP;
    r_outcome := CASE WHEN found_candidate THEN 'none_available' ELSE 'no_projects' END;
    RETURN NEXT;
END;
$$;
"""


def claim_records_takeovers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def expire_taken_over(apps, schema_editor):
    """Leases taken over before this migration: no slot names their assignment any more."""
    Assignment, Slot = apps.get_model("tasks", "Assignment"), apps.get_model("tasks", "Slot")
    held = Slot.objects.filter(state="leased").values("assignment_id")
    Assignment.objects.filter(status="active").exclude(pk__in=held).update(status="expired")


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0005_claim_plans_and_constraints"),
        ("workforce", "0002_audit_append_only"),
    ]

    operations = [
        # The function as migration 0002 left it is not restored going back: this one only
        # adds the takeover record, harmless under the old schema.
        migrations.RunPython(claim_records_takeovers, migrations.RunPython.noop),
        migrations.RunPython(expire_taken_over, migrations.RunPython.noop),
        migrations.RemoveIndex(
            model_name="assignment",
            name="assignment_lease_idx",
        ),
        migrations.AlterField(
            model_name="assignment",
            name="project",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to="tasks.project",
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(fields=["project", "annotator"], name="assignment_project_idx"),
        ),
    ]
