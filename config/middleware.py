"""Request guards every view shares, DRF's and plain Django's alike.

- A body declared larger than the limit is refused with 413 before anything reads it
  (multipart forms aside: their files stream to disk, and their parser counts the other fields).
- A query string or a header carrying a NUL character is refused with 400 naming the parameter
  or header: PostgreSQL stores no NUL, and filters, the organization header and the token all
  end in a query.
- An id in the path that no ``bigint`` can hold names no object: 404.
- An error Django answers itself under ``/api/`` (an unknown URL) is written in the envelope.
- A request that waited past ``lock_timeout`` or ran past ``statement_timeout`` answers 503 with
  ``Retry-After``, never a hang and never a 500.

Every refusal is the API's error envelope, ``{"error": {"code", "message", "fields"}}``.
"""

import json
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from psycopg import errors as pg_errors

from config.errors import ErrorCode
from config.parsers import BODY_FIELD, body_limit
from config.storable import bigint_problem, text_problem

# A lock held elsewhere is usually let go within seconds (a claim's transaction is short).
RETRY_AFTER_SECONDS = 2


def error_body(code: ErrorCode, message: str, fields: dict | None = None) -> dict:
    """The one shape of every error answer: ``{"error": {"code", "message", "fields"}}``."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(
    status: int, code: ErrorCode, message: str, fields: dict | None = None, **headers
) -> JsonResponse:
    response = JsonResponse(error_body(code, message, fields), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def database_timeout(exc: BaseException) -> bool:
    """Tell whether ``exc`` is PostgreSQL giving up on a lock wait or a statement."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
    return isinstance(cause, pg_errors.LockNotAvailable | pg_errors.QueryCanceled)


TIMED_OUT_MESSAGE = "The database is busy with this data; try again shortly."


def timed_out_response() -> JsonResponse:
    return error_response(
        503, ErrorCode.TIMED_OUT, TIMED_OUT_MESSAGE, Retry_After=str(RETRY_AFTER_SECONDS)
    )


class RequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = (
            self._body_refused(request)
            or self._headers_refused(request)
            or self._query_refused(request)
        )
        if refused is not None:
            return refused
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code in _PLAIN_CODES
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            # Django's own pages (an unknown URL, a refused host) are HTML: the API answers
            # every error in its envelope.
            status = response.status_code
            return error_response(status, _PLAIN_CODES[status], response.reason_phrase)
        return response

    def _body_refused(self, request: HttpRequest) -> JsonResponse | None:
        if request.content_type == "multipart/form-data":
            return None
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length < 0:
            return error_response(
                400,
                ErrorCode.PARSE_ERROR,
                "Content-Length is not a byte count.",
                {"Content-Length": ["Must be a non-negative integer."]},
            )
        limit = body_limit()
        if length > limit:
            return error_response(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The request body is larger than {limit} bytes.",
                {BODY_FIELD: [f"At most {limit} bytes; this one has {length}."]},
            )
        return None

    def _headers_refused(self, request: HttpRequest) -> JsonResponse | None:
        """A NUL in a header the app reads (X-Organization, the token) would reach a query."""
        fields = {
            key[5:].replace("_", "-").title(): ["must not contain a NUL character"]
            for key, value in request.META.items()
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value
        }
        if not fields:
            return None
        return error_response(400, ErrorCode.INVALID_INPUT, "Invalid header.", fields=fields)

    def _query_refused(self, request: HttpRequest) -> JsonResponse | None:
        query = request.META.get("QUERY_STRING", "")
        if "%00" not in query and "\x00" not in query:
            return None
        fields: dict[str, list[str]] = {}
        for key, values in request.GET.lists():
            shown = key.replace("\x00", "\\x00")
            if reason := text_problem(key):
                fields.setdefault(shown, []).append(f"the parameter's name {reason}")
            for value in values:
                if reason := text_problem(value):
                    fields.setdefault(shown, []).append(reason)
        if not fields:
            return None
        return error_response(
            400, ErrorCode.INVALID_INPUT, "Invalid query parameter.", fields=fields
        )

    def process_view(self, request, view_func, view_args, view_kwargs):
        """An id in the path beyond ``bigint`` names nothing: 404, as an unknown id does."""
        for name, value in view_kwargs.items():
            if isinstance(value, str) and value.isdigit() and _beyond_bigint(value):
                return error_response(
                    404, ErrorCode.NOT_FOUND, "Not found.", {name: ["No such object."]}
                )
        return None

    def process_exception(self, request, exception):
        if database_timeout(exception):
            return timed_out_response()
        # Django's own form parsing refuses these; a view whose parser is not config.parsers'
        # lets them through, and Django would answer an HTML 400.
        if isinstance(exception, RequestDataTooBig):
            limit = body_limit()
            return error_response(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The request's form fields are larger than {limit} bytes.",
                {BODY_FIELD: [f"At most {limit} bytes outside uploaded files."]},
            )
        if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
            return error_response(400, ErrorCode.PARSE_ERROR, str(exception))
        return None


_PLAIN_CODES = {
    400: ErrorCode.INVALID_INPUT,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def refuse_oversized_bodies(app):
    """Wrap an ASGI HTTP application so that a body declared over the limit is refused before
    it is received: Django's ASGI handler would otherwise spool all of it to disk first."""

    async def guarded(scope, receive, send):
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length", b"0")
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = body_limit()
        if not multipart and declared.isdigit() and int(declared) > limit:
            body = json.dumps(
                {"error": {"code": ErrorCode.PAYLOAD_TOO_LARGE,
                           "message": f"The request body is larger than {limit} bytes.",
                           "fields": {BODY_FIELD: [f"At most {limit} bytes."]}}}
            ).encode()  # fmt: skip
            await send(
                {"type": "http.response.start", "status": 413,
                 "headers": [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())]}
            )  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return guarded


def _beyond_bigint(digits: str) -> bool:
    # Compare lengths first: int() of thousands of digits is refused by Python itself.
    return len(digits) > 19 or bigint_problem(int(digits)) is not None
