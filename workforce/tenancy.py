"""Which organization a request acts in, and which roles may call a view.

A request names its organization by slug in the ``X-Organization`` header (the web pages keep
it in the session). A user with exactly one active membership may omit it.
"""

from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.permissions import BasePermission

from config.errors import ErrorCode, NotFound, ValidationFailed
from config.rows import JoinedRows

from . import throttles
from .models import Annotator, Member, Organization, Role

# Who may call a method, as used in the views' ``roles`` maps.
ANYONE = tuple(Role.values)
STAFF = (Role.MANAGER, Role.QA_LEAD)  # see everyone in the organization
MANAGER = (Role.MANAGER,)
QA_LEAD = (Role.QA_LEAD,)
ANNOTATOR = (Role.ANNOTATOR,)

ORGANIZATION_HEADER = "X-Organization"
SESSION_KEY = "organization"


def request_member(request: HttpRequest) -> Member:
    """Return the member the request acts as, resolving and caching it once per request."""
    cached = getattr(request, "_assay_member", None)
    if cached is not None:
        return cached
    # The annotator profile comes along: the claim and submit endpoints need it at once. The
    # user is the request's own; joining it again would only make the query costlier to plan.
    memberships = Member.objects.select_related("organization", "annotator").filter(
        user=request.user, is_active=True
    )
    slug = request.headers.get(ORGANIZATION_HEADER) or (
        request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    )
    if slug:
        member = memberships.filter(organization__slug=slug).first()
        if member is None:
            # Another organization's existence is not confirmed to outsiders.
            raise NotFound(
                f"Organization {slug!r} not found.", code=ErrorCode.ORGANIZATION_NOT_FOUND
            )
    else:
        found = list(memberships[:2])
        if not found:
            raise NotFound(
                "You are not a member of any organization.", code=ErrorCode.NO_MEMBERSHIP
            )
        if len(found) > 1:
            raise ValidationFailed(
                f"You belong to several organizations; send the {ORGANIZATION_HEADER} header.",
                code=ErrorCode.ORGANIZATION_REQUIRED,
                fields={ORGANIZATION_HEADER: ["Required: the slug of the organization."]},
            )
        member = found[0]
    member.user = request.user
    request._assay_member = member
    return member


# A token with its user, membership, organization and annotator profile.
# Its timestamps and the profile's languages are left unread: no request uses them, and each
# costs a conversion in Python, on every request.
_LOADED = JoinedRows(
    [(Token, "t"), (get_user_model(), "u"), (Member, "m"), (Organization, "o"), (Annotator, "a")],
    deferred={
        "t": ("created",),
        "u": ("last_login", "date_joined"),
        "m": ("created_at", "updated_at"),
        "o": ("created_at", "updated_at"),
        "a": ("created_at", "updated_at", "languages"),
    },
)


# The member a token acts as, the one definition of it, as an SQL expression of the parameters
# ``%(token)s`` (its key) and ``%(slug)s`` (the organization the request names, or None): the
# token's user is active, the membership active and in that organization, or the user's only
# one. NULL when there is no such single membership. Every name comes from the models.
TOKEN_MEMBER_SQL = f"""(
    SELECT CASE WHEN count(*) = 1 THEN min(m.id) END
    FROM {Token._meta.db_table} t
    JOIN {get_user_model()._meta.db_table} u ON u.id = t.user_id AND u.is_active
    JOIN {Member._meta.db_table} m ON m.user_id = u.id AND m.is_active
    JOIN {Organization._meta.db_table} o ON o.id = m.organization_id
    WHERE t.key = %(token)s AND (%(slug)s::text IS NULL OR o.slug = %(slug)s)
)"""  # noqa: S608

# The annotator profile of the member a token acts as, when the member's role is one of
# ``%(roles)s``; NULL otherwise.
TOKEN_ANNOTATOR_SQL = f"""(
    SELECT w.id FROM {Annotator._meta.db_table} w
    JOIN {Member._meta.db_table} m ON m.id = w.member_id
    WHERE m.id = {TOKEN_MEMBER_SQL} AND m.role = ANY(%(roles)s)
)"""  # noqa: S608

# One statement reading a token with its user, membership, organization and profile.
_BY_TOKEN = (
    f"SELECT {_LOADED.columns} FROM {_LOADED.table('t')} t "  # noqa: S608
    f"JOIN {_LOADED.table('u')} u ON u.id = t.user_id "
    f"JOIN {_LOADED.table('m')} m ON m.user_id = u.id "
    f"JOIN {_LOADED.table('o')} o ON o.id = m.organization_id "
    f"LEFT JOIN {_LOADED.table('a')} a ON a.member_id = m.id "
    f"WHERE t.key = %(token)s AND m.id = {TOKEN_MEMBER_SQL}"
)


def token_sent(request) -> str | None:
    """The key of the token the request sends (``Authorization: Token <key>``), or None when it
    sends none or a malformed one, which ``MemberTokenAuthentication`` refuses."""
    auth = get_authorization_header(request).split()
    if len(auth) != 2 or auth[0].lower() != MemberTokenAuthentication.keyword.lower().encode():
        return None
    try:
        return auth[1].decode()
    except UnicodeError:
        return None


class MemberTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, reading the member the request acts as in the same statement.

    Every API call needs the user and then the member (``request_member``). Through the ORM that
    is two queries whose compiling costs more than the claim itself; this is one prepared
    statement. When it does not settle the member (``TOKEN_MEMBER_SQL``: an inactive user, no
    membership in the organization, or several without the header), the token is checked alone
    and ``request_member`` says why.
    """

    def authenticate(self, request):
        self.slug = request.headers.get(ORGANIZATION_HEADER)
        self.member = None
        try:
            result = super().authenticate(request)
        except AuthenticationFailed:
            # Counted after the lookup, so that a valid token costs no cache call; past the
            # address's budget an unknown token answers 429 instead of 401.
            try:
                throttles.token_failed(request)
            except throttles.TooManyAttempts as exc:
                raise Throttled(wait=exc.wait, detail="Too many failed attempts.") from None
            raise
        if self.member is not None:
            request._request._assay_member = self.member
        return result

    def authenticate_credentials(self, key):
        with connection.cursor() as cursor:
            cursor.execute(_BY_TOKEN, {"token": key, "slug": self.slug or None})
            row = cursor.fetchone()
        if row is None:
            return super().authenticate_credentials(key)
        token, user, member, organization, annotator = _LOADED.instances(row)
        token.user = member.user = user
        member.organization = organization
        # A member without a profile reads ``annotator`` as missing, without another query.
        Member.annotator.related.set_cached_value(member, annotator if annotator.pk else None)
        if annotator.pk:
            annotator.member = member
        self.member = member
        return user, token


class HasRole(BasePermission):
    """Allow a request when the member's role is listed for its method in ``view.roles``.

    ``roles`` maps an HTTP method to the roles allowed to call it; a method not listed is
    refused. Resolving the member here also enforces that the user belongs to the organization.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        member = request_member(request._request)
        allowed = view.roles.get(request.method)
        if request.method == "HEAD":
            allowed = view.roles.get("GET")
        elif request.method == "OPTIONS":
            # Whoever may call some method of the view may ask what it takes (DRF's metadata
            # lists only the methods the caller may call), a POST-only view included.
            allowed = {role for roles in view.roles.values() for role in roles}
        return allowed is not None and member.role in allowed

    def may_refuse(self, view, method: str) -> bool:
        """Tell the schema (config.openapi) whether some role is refused ``method`` (403)."""
        return set(view.roles.get(method, ())) != set(ANYONE)
