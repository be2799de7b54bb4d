"""Which organization a request acts in, and which roles may call a view.

A request names its organization by slug in the ``X-Organization`` header (the web pages keep
it in the session). A user with exactly one active membership may omit it.
"""

from django.http import HttpRequest
from rest_framework.permissions import BasePermission

from config.errors import NotFound, ValidationFailed

from .models import Member, Role

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
    # The annotator profile comes along: the claim and submit endpoints need it at once.
    memberships = Member.objects.select_related("organization", "user", "annotator").filter(
        user=request.user, is_active=True
    )
    slug = request.headers.get(ORGANIZATION_HEADER) or (
        request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    )
    if slug:
        member = memberships.filter(organization__slug=slug).first()
        if member is None:
            # Another organization's existence is not confirmed to outsiders.
            raise NotFound(f"Organization {slug!r} not found.", code="organization_not_found")
    else:
        found = list(memberships[:2])
        if not found:
            raise NotFound("You are not a member of any organization.", code="no_membership")
        if len(found) > 1:
            raise ValidationFailed(
                f"You belong to several organizations; send the {ORGANIZATION_HEADER} header.",
                code="organization_required",
                fields={ORGANIZATION_HEADER: ["Required: the slug of the organization."]},
            )
        member = found[0]
    request._assay_member = member
    return member


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
        if request.method in ("HEAD", "OPTIONS"):
            allowed = view.roles.get("GET")
        return allowed is not None and member.role in allowed
