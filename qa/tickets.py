"""Tickets that open the live-events WebSocket for API clients.

A browser's socket carries its session cookie; an API client has a long-lived token, which must
never travel in a URL (URLs end up in proxies' and servers' logs). The client trades its token
for a ticket (``POST /api/v1/live/ticket``) and opens ``/ws/orgs/<slug>/?ticket=<ticket>``.

A ticket is signed (``django.core.signing``, with a salt of its own, so that no other signed
value of the project is a ticket), names the user and the organization it was issued in, and
is good for ``TICKET_SECONDS``: long enough to connect, short enough that one read from a log
is useless. It proves who the client is, not what they may see: the socket's access is decided
when it connects and rechecked while it stays open, as for a session (``live_access``).
"""

from datetime import datetime, timedelta

from django.core import signing
from django.utils import timezone

from workforce.models import Member

SALT = "assay.qa.live-ticket"
# How long a ticket opens a socket after it was issued.
TICKET_SECONDS = 60


def ticket_issue(*, member: Member) -> tuple[str, datetime]:
    """A ticket for the member's user in the member's organization, and when it expires."""
    ticket = signing.dumps(
        {"user": member.user_id, "organization": member.organization.slug}, salt=SALT
    )
    return ticket, timezone.now() + timedelta(seconds=TICKET_SECONDS)


def ticket_user(ticket: str, *, organization: str) -> int | None:
    """The user a ticket was issued to for ``organization``; None when it is forged, expired,
    or for another organization."""
    try:
        found = signing.loads(ticket, salt=SALT, max_age=TICKET_SECONDS)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(found, dict) or found.get("organization") != organization:
        return None
    user = found.get("user")
    return user if isinstance(user, int) and not isinstance(user, bool) else None
