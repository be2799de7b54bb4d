"""Audit verbs and error codes are enumerations: each one written is listed, each listed is used.

The source is read as syntax trees: a verb or a code must be written as a member
(``AuditVerb.MEMBER_CREATED``, ``ErrorCode.LEASE_LOST``), never as a string, so that the
enumerations are the whole list a reader or a client needs.
"""

import ast
import functools
import inspect
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404
from rest_framework import exceptions

from config.api import exception_handler
from config.errors import DomainError, ErrorCode
from tests.helpers import make_project
from workforce.models import AuditEvent, AuditVerb, Role

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "workforce", "tasks", "qa")


@functools.cache
def _trees() -> list[tuple[str, ast.Module]]:
    """Every module of the apps and of ``config``, migrations aside, as a syntax tree."""
    return [
        (str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path)))
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _members_used(enum: type) -> set[str]:
    """Names of ``enum``'s members the source refers to as ``Enum.MEMBER``."""
    return {
        node.attr
        for _path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == enum.__name__
        and node.attr in enum.__members__
    }


def _is_member(node: ast.expr, enum: type) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == enum.__name__
        and node.attr in enum.__members__
    )


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _where(path: str, node: ast.AST) -> str:
    return f"{path}:{node.lineno}: {ast.unparse(node)}"


def _domain_errors() -> set[str]:
    """The names of DomainError and every subclass of it the source defines."""
    names = {DomainError.__name__}
    classes = [
        node
        for _path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    ]
    grew = True
    while grew:
        grew = False
        for node in classes:
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            if node.name not in names and bases & names:
                names.add(node.name)
                grew = True
    return names


def test_every_audit_verb_written_is_a_member():
    wrong = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                # A verb is a member where it is chosen; a name only passes a chosen one on.
                if keyword.arg == "verb" and not (
                    _is_member(keyword.value, AuditVerb) or isinstance(keyword.value, ast.Name)
                ):
                    wrong.append(_where(path, keyword.value))
    assert not wrong, "audit verbs not written as AuditVerb members:\n" + "\n".join(wrong)


def test_every_audit_verb_listed_is_written_somewhere():
    unused = set(AuditVerb.names) - _members_used(AuditVerb)
    assert not unused, f"AuditVerb members nothing writes: {sorted(unused)}"


def test_audit_verbs_are_nouns_with_a_past_participle():
    for verb in AuditVerb.values:
        noun, _, happened = verb.partition(".")
        assert noun and (happened.endswith("ed") or happened == "set"), verb


def test_the_database_refuses_a_verb_not_listed(org, db):
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(
            organization=org.organization,
            verb="annotator.suspend",
            target_type="annotator",
            target_id=org.annotator.pk,
            target_repr="x",
        )


def test_every_error_code_raised_is_a_member():
    domain_errors = _domain_errors()
    wrong = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in domain_errors:
                wrong += [
                    _where(path, k.value)
                    for k in node.keywords
                    if k.arg == "code" and not _is_member(k.value, ErrorCode)
                ]
            elif isinstance(node, ast.ClassDef) and node.name in domain_errors:
                wrong += [
                    _where(path, statement)
                    for statement in node.body
                    if isinstance(statement, ast.Assign)
                    and any(getattr(t, "id", None) == "code" for t in statement.targets)
                    and not _is_member(statement.value, ErrorCode)
                ]
            elif isinstance(node, ast.Dict):
                # An error body built by hand: {"error": {"code": ..., ...}}.
                wrong += [
                    _where(path, value)
                    for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant)
                    and key.value == "code"
                    and not (_is_member(value, ErrorCode) or isinstance(value, ast.Name))
                ]
    assert not wrong, "error codes not written as ErrorCode members:\n" + "\n".join(wrong)


def test_every_error_code_listed_is_answered_somewhere():
    unused = set(ErrorCode.__members__) - _members_used(ErrorCode)
    assert not unused, f"ErrorCode members nothing answers: {sorted(unused)}"


def test_error_codes_are_snake_case():
    for code in ErrorCode:
        assert code.value == code.name.lower(), code


def _drf_exceptions() -> list[exceptions.APIException]:
    """One instance of every exception DRF defines."""
    arguments = {
        exceptions.MethodNotAllowed: ("PUT",),
        exceptions.UnsupportedMediaType: ("text/xml",),
        exceptions.Throttled: (5,),
    }
    return [
        cls(*arguments.get(cls, ()))
        for _name, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, exceptions.APIException) and cls is not exceptions.APIException
    ]


@pytest.mark.parametrize(
    "exc",
    [*_drf_exceptions(), Http404(), DjangoPermissionDenied()],
    ids=lambda exc: type(exc).__name__,
)
def test_every_exception_drf_raises_answers_with_a_listed_code(exc):
    response = exception_handler(exc, {})
    code = response.data["error"]["code"]
    assert code in ErrorCode.__members__.values() and code != ErrorCode.SERVER_ERROR


def test_errors_of_real_requests_carry_listed_codes(org, db):
    project = make_project(org)
    anonymous = org.client(Role.MANAGER)
    anonymous.credentials()
    manager = org.client(Role.MANAGER)
    url = f"/api/v1/projects/{project.pk}/"
    answers = {
        ErrorCode.NOT_AUTHENTICATED: anonymous.get(url),
        ErrorCode.PARSE_ERROR: manager.patch(url, "{", content_type="application/json"),
        ErrorCode.UNSUPPORTED_MEDIA_TYPE: manager.patch(url, "x", content_type="text/xml"),
        # Token creation is open to anyone, so its missing GET is not refused for a role first.
        ErrorCode.METHOD_NOT_ALLOWED: anonymous.get("/api/v1/auth/token"),
        ErrorCode.INVALID_INPUT: manager.patch(url, {"overlap": "two"}, format="json"),
        ErrorCode.NOT_FOUND: manager.get(f"/api/v1/projects/{project.pk + 1}/"),
    }
    assert {code: r.json()["error"]["code"] for code, r in answers.items()} == {
        code: code.value for code in answers
    }
