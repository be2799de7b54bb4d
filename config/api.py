"""API plumbing shared by every app: pagination, input validation and the one exception
handler."""

from collections.abc import Callable

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError, ErrorCode, FieldErrors, ValidationFailed
from config.middleware import (
    RETRY_AFTER_SECONDS,
    TIMED_OUT_MESSAGE,
    database_timeout,
    error_body,
    error_response,
)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        """Refuse a page size that is not a whole number from 1 to the maximum, naming it.

        DRF falls back to the default for ``page_size=lots`` and cuts a larger one down: a
        client would get a page other than the one it asked for, and could not tell.
        """
        raw = request.query_params.get(self.page_size_query_param)
        if not raw:
            # Absent or empty (the schema allows an empty value): the default size.
            return self.page_size
        # Its length is checked before it is read as a number: Python refuses to read one of
        # thousands of digits (a 500, not a 400).
        if (
            not raw.isascii()
            or not raw.isdigit()
            or len(raw) > len(str(self.max_page_size))
            or not 1 <= int(raw) <= self.max_page_size
        ):
            raise ValidationFailed(
                "Invalid page size.",
                fields={"page_size": [f"A whole number from 1 to {self.max_page_size}."]},
            )
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
            elif parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


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


def validated(serializer: serializers.Serializer, *checks: Callable[[dict], None]) -> dict:
    """Return the serializer's validated data, or raise one error naming every bad field.

    When the serializer refuses some fields, each of ``checks`` (the service's own validation,
    which raises ``ValidationFailed``) still runs on the fields that passed, so that one answer
    names the bad kind and the bad overlap together. When the serializer accepts everything the
    checks are left to the service, which runs them anyway.
    """
    if serializer.is_valid():
        return dict(serializer.validated_data)
    problems = FieldErrors()
    problems.update(_flatten(serializer.errors))
    values = _values_that_passed(serializer)
    for check in checks:
        with problems.collect():
            check(values)
    raise problems.error()


def _values_that_passed(serializer: serializers.Serializer) -> dict:
    """The validated values of the fields a refused serializer did not name."""
    data = serializer.initial_data
    if not isinstance(data, dict) or not isinstance(serializer.errors, dict):
        return {}
    rest = {key: value for key, value in data.items() if key not in serializer.errors}
    # Partial: the refused fields are left out, required ones among them.
    again = type(serializer)(data=rest, partial=True, context=serializer.context)
    return dict(again.validated_data) if again.is_valid() else {}


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


def exception_handler(exc, context):
    """Answer every error as ``{"error": {"code", "message", "fields"}}``."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if database_timeout(exc):
        # lock_timeout or statement_timeout (settings): another transaction holds the rows.
        return Response(
            error_body(ErrorCode.TIMED_OUT, TIMED_OUT_MESSAGE),
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
        response.data = error_body(_drf_code(exc), f"Invalid input. {summary}", fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        response.data = error_body(_drf_code(exc), str(exc.detail))
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """Answer an unhandled exception (Django's ``handler500``): the envelope under ``/api/``,
    Django's page elsewhere. What went wrong is logged, never sent."""
    if request.path.startswith("/api/"):
        return error_response(
            500, ErrorCode.SERVER_ERROR, "The server failed to answer; the error is logged."
        )
    return defaults.server_error(request)
