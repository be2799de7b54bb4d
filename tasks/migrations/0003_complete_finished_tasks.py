"""Record the completion of tasks whose every slot is done but that were never marked complete.

Before submit locked the task ahead of looking at its other slots, the last seats of a task
submitted at the same moment could each see another still leased, and nobody completed it.
Their completion time is when the last of their annotations came in.
"""

from django.db import migrations

COMPLETE = """
UPDATE tasks_task t
SET completed_at = (SELECT max(a.submitted_at) FROM tasks_annotation a WHERE a.task_id = t.id)
WHERE t.completed_at IS NULL
  AND EXISTS (SELECT 1 FROM tasks_slot s WHERE s.task_id = t.id)
  AND NOT EXISTS (SELECT 1 FROM tasks_slot s WHERE s.task_id = t.id AND s.state <> 'done')
  AND EXISTS (SELECT 1 FROM tasks_annotation a WHERE a.task_id = t.id)
"""


class Migration(migrations.Migration):
    dependencies = [("tasks", "0002_import_heartbeat")]

    operations = [migrations.RunSQL(COMPLETE, migrations.RunSQL.noop, elidable=True)]
