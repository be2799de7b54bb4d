"""How the OpenAPI schema describes every view, generically (``DEFAULT_SCHEMA_CLASS``).

drf-spectacular reads each view's ``@extend_schema``; this schema class adds what is true of
every view of a kind, so that no view has to repeat it and a new view is described alike:

- A ``GET`` whose response is a list, on a view with a ``pagination_class``, is the paginated
  envelope ``{count, next, previous, results}`` with the ``page`` and ``page_size`` parameters;
  a view with a ``filterset_class`` lists its filters as query parameters.
- Path ids matched by ``\\d+`` are integers.
- Every operation lists the error statuses it can answer, each with the ``Error`` envelope
  (``config.api.exception_handler``), read from the operation itself: 400 where it takes a
  body or parameters or reads a token; 401 and 429 where it authenticates (an unknown token is
  throttled); 403 where a permission can refuse an authenticated caller (``may_refuse``); 404
  where the path has an id or the organization header can name none of the caller's; 413 and
  415 where it takes a body; 503 everywhere (a database timeout). Only a 409 is said in the
  view (``error_response``): only the service knows its conflicts.
"""

from django import forms
from django.core.validators import RegexValidator
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

from config.errors import ErrorCode
from config.storable import NOT_BLANK_PATTERN

_UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The header naming the organization a request acts in (workforce.tenancy, which config does not
# import).
ORGANIZATION_HEADER = "X-Organization"
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before trying again.",
    }
}


# Named ErrorCodeEnum in the schema (ENUM_NAME_OVERRIDES matches choices by values and labels).
ERROR_CODE_CHOICES = [(code.value, code.value) for code in ErrorCode]


class ErrorDetail(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=ERROR_CODE_CHOICES,
        help_text="What stopped the request; clients branch on it.",
    )
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Each bad input field (a JSON path such as `payload.boxes[0].w`) and its "
        "reasons; empty when the error is about no field.",
    )


class Error(serializers.Serializer):
    """Every error answer of the API."""

    error = ErrorDetail()


def error_response(description: str) -> OpenApiResponse:
    """Document one error status of an operation, e.g. ``responses={409: error_response(...)}``."""
    return OpenApiResponse(Error, description=description)


# Which error statuses apply to an operation, and what each says there.
_DESCRIPTIONS = {
    400: "The input is invalid (`invalid_input`, `parse_error`, `organization_required`, ...): "
    "`fields` names each bad field and why. Nothing was changed.",
    401: "No credentials were sent (`not_authenticated`) or they are wrong "
    "(`authentication_failed`).",
    403: "Your role does not allow this (`permission_denied`), or a browser session sent no "
    "CSRF token.",
    404: "No such object, or none you may see (`not_found`); or the `X-Organization` header "
    "names none of your organizations (`organization_not_found`, `no_membership`).",
    409: "The change does not fit the object's current state (`conflict`).",
    413: "The body is over the size limit the message names (`payload_too_large`).",
    415: "The body's content type is not one the operation reads (`unsupported_media_type`).",
    429: "Too many failed authentication attempts (`throttled`); retry after `Retry-After`.",
    503: "The database is busy with this data (`timed_out`); retry after `Retry-After`.",
}


def _state_form_field_rules(parameter: dict, filter_) -> None:
    """Say in a filter's parameter what its form field checks (a whole number, bounds, length).

    The extension reads the model field, which says nothing of the rules a filter adds. An
    empty value is no filter at all (django-filter skips it).
    """
    schema, rules = parameter["schema"], filter_.extra
    if issubclass(filter_.field_class, forms.IntegerField):
        schema["type"] = "integer"
        schema.pop("format", None)
    if schema.get("type") in ("integer", "number"):
        for rule, keyword in (("min_value", "minimum"), ("max_value", "maximum")):
            if rules.get(rule) is not None:
                schema[keyword] = rules[rule]
    if schema.get("type") == "string" and rules.get("max_length") is not None:
        schema["maxLength"] = rules["max_length"]
    parameter["allowEmptyValue"] = True


class AssaySchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the envelope, filters, ids and errors above."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # What a client sends to a plain char field is trimmed: one of white space alone is
        # blank, which the schema says with a pattern. Fields with a format or a pattern of
        # their own, and what the server answers, are left as they are.
        if (
            direction == "request"
            and type(field) is serializers.CharField
            and not field.allow_blank
            and field.trim_whitespace
            and not any(isinstance(v, RegexValidator) for v in field.validators)
        ):
            schema["pattern"] = NOT_BLANK_PATTERN
        return schema

    def _get_paginator(self):
        # Only a GET list is a page: a POST answering many rows (201) is a plain array.
        if self.method != "GET":
            return None
        return super()._get_paginator()

    def _get_filter_parameters(self) -> list[dict]:
        filterset_class = getattr(self.view, "filterset_class", None)
        if filterset_class is None or self.method != "GET" or not self._is_list_view():
            return []
        # The views apply the filterset themselves (OrganizationApi.filtered) rather than
        # through a filter backend, so the backend's extension is asked about each filter.
        extension = DjangoFilterExtension(None)
        model = filterset_class._meta.model
        parameters = []
        for name, field in filterset_class.base_filters.items():
            for parameter in extension.resolve_filter_field(
                self, model, filterset_class, name, field
            ):
                _state_form_field_rules(parameter, field)
                parameters.append(parameter)
        return parameters

    def _get_pagination_parameters(self) -> list[dict]:
        parameters = super()._get_pagination_parameters()
        for parameter in parameters:
            # DRF reads an empty page or page size as none given.
            parameter["allowEmptyValue"] = True
            if parameter["name"] == "page":
                parameter["schema"]["minimum"] = 1  # below it there is no page: 404
        return parameters

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict]:
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["schema"].get("pattern") == r"^\d+$":
                parameter["schema"] = {"type": "integer", "minimum": 0}
        return parameters

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            self._add_error_responses(operation)
        return operation

    def _add_error_responses(self, operation: dict) -> None:
        responses = operation["responses"]
        envelope = self.resolve_serializer(Error, "response").ref
        for status in sorted(self._error_statuses(operation)):
            response = responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
            # Every error answers the envelope (config.api), whatever a view declared.
            response["content"] = {"application/json": {"schema": envelope}}
            if status in (429, 503):
                response["headers"] = {**_RETRY_AFTER, **response.get("headers", {})}

    def _error_statuses(self, operation: dict) -> set[int]:
        """Say which error statuses the operation can answer, from what it takes and who calls."""
        declared = {int(code) for code in operation["responses"] if code.startswith(("4", "5"))}
        statuses = {503, *declared}  # any statement may time out (config.middleware)
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        if has_body or any(p["in"] in ("query", "header") for p in parameters):
            statuses.add(400)
        if has_body:
            statuses |= {413, 415}
        security = operation.get("security", [])
        authenticated = bool(security) and {} not in security
        if authenticated:
            # An unknown token is throttled per address; a NUL in it is refused (400) before
            # it reaches a query (config.middleware).
            statuses |= {400, 401, 429}
            if self._may_refuse():
                statuses.add(403)
        # An id names no object; the organization header names none of the caller's; a page
        # number is past the last page.
        if any(p["in"] == "path" or p["name"] in (ORGANIZATION_HEADER, "page") for p in parameters):
            statuses.add(404)
        return statuses

    def _may_refuse(self) -> bool:
        """Tell whether an authenticated caller can be refused (403).

        A permission class says so itself with ``may_refuse(view, method)``; one that does not is
        assumed to refuse someone. A browser session must send a CSRF token on unsafe methods.
        """
        if self.method in _UNSAFE_METHODS and any(
            isinstance(a, SessionAuthentication) for a in self.view.get_authenticators()
        ):
            return True
        for permission in self.view.get_permissions():
            may_refuse = getattr(permission, "may_refuse", None)
            if may_refuse is not None:
                if may_refuse(self.view, self.method):
                    return True
            elif not isinstance(permission, (AllowAny, IsAuthenticated)):
                return True
        return False
