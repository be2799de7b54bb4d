"""Rows of several models read by one statement (``config.rows.JoinedRows``): what a read leaves
unread is named exactly, and is never part of its select list."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.rows import JoinedRows
from tasks.models import Project, Task
from tests.helpers import image_rows, import_rows, make_project


def test_a_read_leaves_out_exactly_the_fields_it_names():
    rows = JoinedRows([(Task, "t"), (Project, "p")], deferred={"t": ("data", "gold_answer")})
    assert 't."data"' not in rows.columns and 't."gold_answer"' not in rows.columns
    assert 't."id"' in rows.columns and 'p."label_schema"' in rows.columns


@pytest.mark.parametrize(
    ("deferred", "message"),
    [
        ({"x": ("data",)}, r"Not aliases of these tables: \['x'\]"),
        ({"t": ("dta",)}, r"Not fields of Task: \['dta'\]"),
    ],
)
def test_a_misspelt_alias_or_field_is_refused_when_the_read_is_defined(deferred, message):
    with pytest.raises(ValueError, match=message):
        JoinedRows([(Task, "t"), (Project, "p")], deferred=deferred)


def test_instances_read_by_hand_act_as_the_orms_own(org):
    """Built without ``__init__``: the same values, saved as updates, deferred fields read on
    first use, relations followed by their ids."""
    project = make_project(org)
    import_rows(project, image_rows(1))
    task = Task.objects.get(project=project)
    rows = JoinedRows([(Task, "t"), (Project, "p")], deferred={"t": ("data",)})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.columns} FROM tasks_task t JOIN tasks_project p ON p.id = t.project_id "
            "WHERE t.id = %s",
            [task.pk],
        )
        read, read_project = rows.instances(cursor.fetchone())
    assert not read._state.adding and read._state.db == "default"
    assert read.external_id == task.external_id and read.project_id == project.pk
    assert read_project.label_schema == project.label_schema
    assert read.get_deferred_fields() == {"data"}
    with CaptureQueriesContext(connection) as queries:
        assert read.data == task.data
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        assert read.project.name == project.name  # not attached: read by its id
    assert len(queries) == 1
    read.priority = 7
    read.save(update_fields=["priority"])
    assert Task.objects.count() == 1 and Task.objects.get().priority == 7
