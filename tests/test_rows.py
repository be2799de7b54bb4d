"""Rows of several models read by one statement (``config.rows.JoinedRows``): what a read leaves
unread is named exactly, and is never part of its select list."""

import pytest

from config.rows import JoinedRows
from tasks.models import Project, Task


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
