"""The SQL functions the database runs are the files in the repository, and speak its enums."""

import re
from enum import StrEnum
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from qa import live_schema
from qa.models import LiveEvent, ReviewerRole, ReviewItemState
from qa.reviews import ReviewClaimOutcome
from tasks.models import AssignmentStatus, ProjectRole, ProjectStatus, SlotState
from tasks.services.claims import ClaimOutcome, SubmitResult
from workforce.models import AnnotatorStatus, CertificationStatus, Role
from workforce.sql import InstallSQL, sql_version

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SQL_FILES = sorted(
    path for app in ("workforce", "tasks", "qa") for path in (ROOT / app).rglob("*.sql")
)

FUNCTION = re.compile(r"CREATE OR REPLACE FUNCTION (\w+)\(")


def test_every_sql_file_of_the_apps_is_checked_here():
    names = {path.relative_to(ROOT).as_posix() for path in SQL_FILES}
    assert {
        "qa/agreement_report.sql",
        "qa/live.sql",
        "qa/reviews.sql",
        "tasks/services/access.sql",
        "tasks/services/claims.sql",
        "tasks/services/submit.sql",
        "workforce/certifications.sql",
    } <= names


def test_a_migration_installs_each_files_current_version():
    """A file changed without a migration installing it again would never reach a database."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    latest = {}
    for key in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(key):
            for operation in loader.graph.nodes[node].operations:
                if isinstance(operation, InstallSQL):
                    latest[operation.path] = operation.version
    for path in SQL_FILES:
        name = path.relative_to(ROOT).as_posix()
        assert latest.get(name) == sql_version(name), (
            f"{name} changed: add a migration with InstallSQL({name!r}, {sql_version(name)!r})"
        )


def _definitions(names: list[str]) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname = ANY(%s)",
            [names],
        )
        return dict(cursor.fetchall())


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_installed_functions_are_the_files(path):
    """Install the file over the migrated database and see that nothing changes.

    A change to a file without a migration that installs it again fails here.
    """
    source = path.read_text()
    names = FUNCTION.findall(source)
    assert names, f"{path} defines no function"
    installed = _definitions(names)
    assert set(installed) == set(names), f"not installed: {set(names) - set(installed)}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(source)
        from_file = _definitions(names)
        transaction.set_rollback(True)
    for name in names:
        assert installed[name] == from_file[name], f"{name} differs from {path.name}"


# Which enumeration a literal compared with, or written to, each column must belong to.
COLUMNS = {
    ("tasks_assignment", "status"): AssignmentStatus,
    ("tasks_slot", "state"): SlotState,
    ("tasks_projectmember", "role"): ProjectRole,
    ("tasks_project", "status"): ProjectStatus,
    ("workforce_annotator", "status"): AnnotatorStatus,
    ("workforce_certification", "status"): CertificationStatus,
    ("workforce_member", "role"): Role,
    ("qa_reviewitem", "state"): ReviewItemState,
    ("qa_reviewlayer", "role"): ReviewerRole,
}
# The aliases and variables the SQL uses for those tables' rows, and the functions' outputs.
NAMES = {
    "a": "tasks_assignment",
    "s": "tasks_slot",
    "o": "tasks_slot",
    "m": "tasks_projectmember",
    "p": "tasks_project",
    "w": "workforce_annotator",
    "me": "workforce_annotator",
    "held": "workforce_certification",
    "wm": "workforce_member",
    "asg": "tasks_assignment",
    "i": "qa_reviewitem",
    "l": "qa_reviewlayer",
}
OUTPUTS = {
    "r_outcome": ClaimOutcome,
    "r_result": SubmitResult,
    "o_outcome": ReviewClaimOutcome,
    "p_status": CertificationStatus,
    "slot_state": SlotState,
}
QUOTED = re.compile(r"'([^']*)'")
# What the outbox's rows are made of (qa/live.sql): their types, and the keys of their data.
OUTBOX_TYPES = {value for value, _ in LiveEvent._meta.get_field("type").choices}
EventDataKey = StrEnum(
    "EventDataKey",
    {
        key: key
        for schema in live_schema.EVENT_DATA.values()
        for key in schema.get("properties", {})
    },
)


def _enum_of(source: str, start: int):
    """Find what the literal at ``start`` is compared with or assigned to."""
    before = source[:start]
    line = before[before.rfind("\n") + 1 :]
    if re.search(r"jsonb_build_object\((?:[^()]|\([^()]*\))*$", before):
        return EventDataKey
    if match := re.search(r"\b(NEW|OLD)\.(\w+)\s*=\s*$", line):
        # A trigger's row: of the table the trigger is on.
        return COLUMNS[re.findall(r"\bON (\w+)", before)[-1], match.group(2)]
    if re.search(r"workforce_certification_state\([^)]*\)\s*(?:=|<>)\s*$", line):
        return CertificationStatus
    if match := re.search(r"(\w+)\s*(?::=|=|<>)\s*$", line):
        name = match.group(1)
        if name in OUTPUTS:
            return OUTPUTS[name]
        if qualified := re.search(r"(\w+)\.(\w+)\s*(?:=|<>)\s*$", line):
            alias, column = qualified.groups()
            if alias in ("OLD", "NEW"):
                # A trigger's condition: the row of the table the trigger is on.
                return COLUMNS[re.findall(r"\bON (\w+)", before)[-1], column]
            return COLUMNS[NAMES[alias], column]
        # An unqualified column belongs to the table the statement updates.
        table = re.findall(r"UPDATE (\w+)", before)[-1]
        return COLUMNS[table, name]
    if match := re.search(r"(\w+)\.(\w+) IS DISTINCT FROM\s*$", line):
        alias, column = match.groups()
        return COLUMNS[NAMES[alias], "status" if alias == "held" else column]
    if re.search(r"THEN\s*$", line):  # workforce_certification_state's answer
        return CertificationStatus
    insert = re.findall(r"INSERT INTO (\w+)\s*\(([^)]*)\)\s*VALUES\s*\(([^)]*)$", before)
    if insert:
        table, columns, values = insert[-1]
        column = [c.strip() for c in columns.split(",")][values.count(",")]
        return COLUMNS[table, column]
    raise AssertionError(f"no rule says what {line.strip()!r}… compares with")


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_every_literal_in_the_sql_is_a_current_choice(path):
    source = path.read_text()
    # Comments may quote anything.
    code = re.sub(r"--[^\n]*", lambda m: " " * len(m.group()), source)
    for match in QUOTED.finditer(code):
        text = match.group(1)
        if not re.fullmatch(r"\w+", text):
            # JSON ('{}') and messages (with spaces) are no choices; live events' types are.
            assert text == "{}" or " " in text or text in OUTBOX_TYPES, (
                f"{path.name}: what is {text!r}?"
            )
            continue
        enum = _enum_of(code, match.start())
        assert text in {str(v) for v in enum}, (
            f"{path.name}: {text!r} is not a {enum.__name__} value"
        )


@pytest.mark.parametrize(
    "query",
    [
        "SELECT q.qualified FROM tasks_project p "
        "CROSS JOIN LATERAL tasks_qualification(1, p.id, now()) q",
        "SELECT q.qualified FROM qa_reviewlayer l "
        "CROSS JOIN LATERAL qa_review_qualification(1, l.id, now()) q",
    ],
    ids=["claim", "review claim"],
)
def test_the_one_rule_of_skill_and_domains_is_inlined_into_both_claims(query):
    """``tasks_skill_qualification`` is plain SQL the planner inlines into its callers, as they
    are into the claims: run as a function of its own it would be a query at every call (a
    subquery among its arguments is enough to prevent it)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Function Scan on tasks_" not in plan and "Function Scan on qa_" not in plan, plan
