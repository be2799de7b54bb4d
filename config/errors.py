"""Domain errors. Services raise these; one DRF exception handler turns them into HTTP."""

from typing import Any


class DomainError(Exception):
    """A rule of the domain refused the operation."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields: dict[str, Any] = fields or {}


class ValidationFailed(DomainError):
    """Input is malformed; ``fields`` names each bad field and why."""

    status_code = 400
    code = "invalid"


class PermissionDenied(DomainError):
    status_code = 403
    code = "permission_denied"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    """The operation does not fit the object's current state."""

    status_code = 409
    code = "conflict"
