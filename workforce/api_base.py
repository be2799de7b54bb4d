"""The base of every API view: authenticated, role-checked, acting inside one organization.

Which organization that is, and who may call what, is ``workforce.tenancy``'s to say. This
module is apart from it because DRF reads the authentication class of ``tenancy`` while it
defines ``APIView``, which this module needs.
"""

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import Pagination
from config.errors import ErrorCode, NotFound, ValidationFailed

from .models import Annotator, Member
from .tenancy import (
    ORGANIZATION_HEADER,
    HasRole,
    MemberTokenAuthentication,
    request_member,
    token_sent,
)

# The organization header, as the OpenAPI schema documents it on every view.
ORGANIZATION_PARAMETER = OpenApiParameter(
    ORGANIZATION_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Slug of the organization to act in; optional with a single membership.",
)


class OrganizationApi(APIView):
    """A view acting inside the request's organization; ``roles`` says who may call each method."""

    permission_classes = [IsAuthenticated, HasRole]
    roles: dict[str, tuple[str, ...]] = {}
    # A GET answering many rows is a page of them (``paginated``), and the schema says so
    # (config.openapi). A view whose list is not paged sets None.
    pagination_class: type[Pagination] | None = Pagination
    # Methods whose handler authenticates a token in its own first statement, with the work
    # (``statement_token``): the annotator's loop, claim and submit, costs one statement less.
    # The request is authenticated as any other when the handler finds that statement did not
    # settle it (``authenticate``), and before any error is answered.
    token_in_statement: frozenset[str] = frozenset()
    statement_token: dict | None = None

    @property
    def member(self) -> Member:
        self.authenticate()
        return request_member(self.request._request)

    def initial(self, request, *args, **kwargs):
        # A method the view lacks is 405 with ``Allow``, whoever asks: checked before the
        # permissions, whose ``roles`` map lists no such method and would answer 403.
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise MethodNotAllowed(request.method)
        key = None
        # As the request's first authenticator would take it (a test's forced user replaces it).
        if request.method in self.token_in_statement and isinstance(
            next(iter(request.authenticators), None), MemberTokenAuthentication
        ):
            key = token_sent(request)
        if key is not None:
            # The parameters of ``TOKEN_MEMBER_SQL``, and the roles the method allows.
            self.statement_token = {
                "token": key,
                "slug": request.headers.get(ORGANIZATION_HEADER) or None,
                "roles": list(self.roles[request.method]),
            }
        super().initial(request, *args, **kwargs)

    def perform_authentication(self, request):
        if self.statement_token is None:
            super().perform_authentication(request)

    def check_permissions(self, request):
        if self.statement_token is None:
            super().check_permissions(request)

    def authenticate(self):
        """Authenticate the request and check its role, as every view does before its handler,
        when the handler's own statement did not (``token_in_statement``)."""
        if self.statement_token is not None:
            self.statement_token = None
            self.perform_authentication(self.request)
            self.check_permissions(self.request)

    def handle_exception(self, exc):
        # Nothing is answered to a request whose token no statement settled: an error of the
        # handler is answered once the request is authenticated, or the refusal instead.
        try:
            self.authenticate()
        except Exception as refused:
            exc = refused
        return super().handle_exception(exc)

    def filtered(self, queryset):
        """Apply ``filterset_class`` to the query string, or answer 400 naming each bad one."""
        filterset = self.filterset_class(self.request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise ValidationFailed(
                "Invalid filter.",
                fields={
                    name: [str(e) for e in errors] for name, errors in filterset.errors.items()
                },
            )
        return filterset.qs

    def paginated(self, queryset, serializer_class, context_for_page=None) -> Response:
        """Serialize one page; ``context_for_page(page)`` adds what is loaded per page at once."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        context = context_for_page(page) if context_for_page else {}
        data = serializer_class(page, many=True, context=context).data
        return paginator.get_paginated_response(data)


def annotator_of(member: Member) -> Annotator:
    """The member's annotator profile, for the endpoints that act as one; 404 without it."""
    annotator = getattr(member, "annotator", None)
    if annotator is None:
        raise NotFound("You have no annotator profile.", code=ErrorCode.NO_ANNOTATOR_PROFILE)
    return annotator
