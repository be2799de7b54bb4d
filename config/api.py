"""API plumbing shared by every app: pagination and the one exception handler."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError, ErrorCode
from config.middleware import RETRY_AFTER_SECONDS, database_timeout


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into ``{"path.to.field": ["reason", ...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, path))
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        out[prefix or "non_field_errors"] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                out.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


# DRF's own exceptions, as the codes this API answers with. A subclass of one of them answers
# with the code of the nearest class listed.
_DRF_CODES: dict[type[exceptions.APIException], ErrorCode] = {
    exceptions.ValidationError: ErrorCode.INVALID_INPUT,
    exceptions.ParseError: ErrorCode.PARSE_ERROR,
    exceptions.UnsupportedMediaType: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    exceptions.NotAcceptable: ErrorCode.NOT_ACCEPTABLE,
    exceptions.NotAuthenticated: ErrorCode.NOT_AUTHENTICATED,
    exceptions.AuthenticationFailed: ErrorCode.AUTHENTICATION_FAILED,
    exceptions.PermissionDenied: ErrorCode.PERMISSION_DENIED,
    exceptions.NotFound: ErrorCode.NOT_FOUND,
    exceptions.MethodNotAllowed: ErrorCode.METHOD_NOT_ALLOWED,
    exceptions.Throttled: ErrorCode.THROTTLED,
}


def _drf_code(exc: exceptions.APIException) -> ErrorCode:
    for cls in type(exc).__mro__:
        if cls in _DRF_CODES:
            return _DRF_CODES[cls]
    return ErrorCode.SERVER_ERROR


def _body(code: ErrorCode, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc, context):
    """Answer every error as ``{"error": {"code", "message", "fields"}}``."""
    if isinstance(exc, DomainError):
        return Response(_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if database_timeout(exc):
        # lock_timeout or statement_timeout (settings): another transaction holds the rows.
        return Response(
            _body(ErrorCode.TIMED_OUT, "The database is busy with this data; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        summary = "; ".join(f"{field}: {' '.join(reasons)}" for field, reasons in fields.items())
        response.data = _body(_drf_code(exc), f"Invalid input. {summary}", fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        response.data = _body(_drf_code(exc), str(exc.detail))
    return response
