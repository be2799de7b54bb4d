"""Domain errors and the codes every error answer carries.

Services raise these; one DRF exception handler (``config.api``) turns them, and DRF's own
exceptions, into ``{"error": {"code", "message", "fields"}}``.
"""

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every code an error answer can carry; clients branch on them.

    Each is snake_case and names what stopped the request: a past participle (``lease_lost``,
    ``already_submitted``) or a noun phrase (``parse_error``, ``invalid_rows``), never a verb.
    A test fails when code raises a code not listed here, or when one listed here is unused.
    """

    # The request itself, answered by the exception handler (DRF's own exceptions among them).
    INVALID_INPUT = "invalid_input"  # input failed validation; ``fields`` names each bad field
    PARSE_ERROR = "parse_error"  # the body is not well-formed for its content type
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # the endpoint does not read that type
    NOT_ACCEPTABLE = "not_acceptable"  # the Accept header asks for a format it cannot answer in
    NOT_AUTHENTICATED = "not_authenticated"  # no credentials were sent
    AUTHENTICATION_FAILED = "authentication_failed"  # the credentials are wrong or inactive
    PERMISSION_DENIED = "permission_denied"  # the caller's role does not allow this
    NOT_FOUND = "not_found"  # no such object, or none the caller may see
    METHOD_NOT_ALLOWED = "method_not_allowed"  # the endpoint has no such HTTP method
    THROTTLED = "throttled"  # too many requests; the Retry-After header says when to retry
    PAYLOAD_TOO_LARGE = "payload_too_large"  # the body is over the limit the message names (413)
    TIMED_OUT = "timed_out"  # a lock held elsewhere or a slow statement; retry after Retry-After
    SERVER_ERROR = "server_error"  # an API exception of no kind listed here: a bug

    # Which organization a request acts in.
    ORGANIZATION_REQUIRED = "organization_required"  # several memberships and no header
    ORGANIZATION_NOT_FOUND = "organization_not_found"  # the header names no membership's slug
    NO_MEMBERSHIP = "no_membership"  # the user belongs to no organization
    NO_ANNOTATOR_PROFILE = "no_annotator_profile"  # an annotator's endpoint; caller has no profile

    # The workforce registry.
    CONFLICT = "conflict"  # the change does not fit the object's current state
    ALREADY_MEMBER = "already_member"  # the user is a member of the organization already
    INVALID_STATUS = "invalid_status"  # a status action that does not apply to the status now
    IN_USE = "in_use"  # a domain someone was certified in cannot be deleted
    ALREADY_CERTIFIED = "already_certified"  # a certification in force or suspended exists
    CERTIFICATION_EXPIRED = "certification_expired"  # reinstating it needs a renewal instead
    CERTIFICATION_REVOKED = "certification_revoked"  # renewing it needs a new issue instead

    # Projects, imports and work.
    FROZEN = "frozen"  # a project setting fixed once tasks exist (the kind; a lower overlap)
    INVALID_ROWS = "invalid_rows"  # an all-or-nothing import found invalid rows; nothing kept
    IMPORT_IN_PROGRESS = "import_in_progress"  # an all-or-nothing import holds the project
    ANNOTATOR_NOT_ACTIVE = "annotator_not_active"  # a suspended or offboarded annotator claims
    ALREADY_SUBMITTED = "already_submitted"  # the assignment's work was handed in already
    ALREADY_RELEASED = "already_released"  # the annotator gave the task back already
    LEASE_LOST = "lease_lost"  # the lease lapsed and someone else took the task
    ACCESS_ENDED = "access_ended"  # the annotator may no longer work on the task; lease revoked

    # Quality.
    ALREADY_UNDONE = "already_undone"  # a quality action was undone already
    SUPERSEDED = "superseded"  # what a quality action changed was changed again since; not undone
    # Qualification exams.
    EXAM_COOLDOWN = "exam_cooldown"  # the annotator failed lately; the message says until when
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # as many failed attempts as the exam allows
    ATTEMPT_IN_PROGRESS = "attempt_in_progress"  # finish the attempt already started first
    ALREADY_PASSED = "already_passed"  # passed, and the certification is not due for renewal
    ATTEMPT_FINISHED = "attempt_finished"  # the attempt was scored; it takes no more answers


class DomainError(Exception):
    """A rule of the domain refused the operation."""

    status_code = 400
    code = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, code: ErrorCode | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields: dict[str, Any] = fields or {}


class ValidationFailed(DomainError):
    """Input is malformed; ``fields`` names each bad field and why."""

    status_code = 400
    code = ErrorCode.INVALID_INPUT


# How many bad fields an error's message names; ``fields`` has every one.
SUMMARY_FIELDS = 5


class FieldErrors:
    """Every problem found in one input, by field, refused at once as one ``ValidationFailed``.

    A check adds what it finds and goes on, so that a client fixes every mistake in one round
    instead of discovering them one request at a time::

        problems = FieldErrors()
        if overlap < 1:
            problems.add("overlap", "Must be at least 1.")
        with problems.collect():
            validate_profile(profile)  # raises ValidationFailed; its fields are kept
        problems.raise_if_any("Invalid project.")
    """

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.fields)

    def add(self, field: str, *reasons: str) -> None:
        self.fields.setdefault(field, []).extend(reasons)

    def update(self, fields: Mapping[str, Iterable[str]]) -> None:
        for field, reasons in fields.items():
            self.add(field, *reasons)

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Keep the fields of a ``ValidationFailed`` raised inside, instead of stopping there.

        Only plain invalid input is collected: another code (a missing organization header)
        says something else than "this field is wrong", and goes on up.
        """
        try:
            yield
        except ValidationFailed as exc:
            if exc.code != ErrorCode.INVALID_INPUT:
                raise
            self.update(exc.fields or {"non_field_errors": [exc.message]})

    def error(self, message: str = "Invalid input.") -> "ValidationFailed":
        """One ``ValidationFailed`` naming every field found wrong; the message sums up the
        first few (a payload of thousands of bad shapes has them all in ``fields``)."""
        shown = list(self.fields.items())[:SUMMARY_FIELDS]
        summary = "; ".join(f"{field}: {' '.join(reasons)}" for field, reasons in shown)
        if len(self.fields) > SUMMARY_FIELDS:
            summary += f"; and {len(self.fields) - SUMMARY_FIELDS} more fields"
        return ValidationFailed(f"{message} {summary}", fields=self.fields)

    def raise_if_any(self, message: str = "Invalid input.") -> None:
        if self.fields:
            raise self.error(message)


class PermissionDenied(DomainError):
    status_code = 403
    code = ErrorCode.PERMISSION_DENIED


class NotFound(DomainError):
    status_code = 404
    code = ErrorCode.NOT_FOUND


class PayloadTooLarge(DomainError):
    """The request body is larger than the server reads."""

    status_code = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class Conflict(DomainError):
    """The operation does not fit the object's current state."""

    status_code = 409
    code = ErrorCode.CONFLICT
