"""API clients open the live-events WebSocket with a short-lived ticket, on a real server.

The server is uvicorn in another process (``asgi_server``); the client is the ``websockets``
library, as an API client would use it: no cookie, no ``Origin``, no token in the URL.
"""

import json
from datetime import datetime
from urllib.parse import quote

import pytest
from django.core import signing
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from qa.models import LiveEvent
from qa.relay import (
    CLOSE_ACCESS_ENDED,
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
)
from qa.tickets import SALT, TICKET_SECONDS
from tests.helpers import asgi_server, session_headers
from tests.qa.live_helpers import checked
from workforce import services
from workforce.models import Member, Role

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://127.0.0.1"


@pytest.fixture(scope="module")
def server(django_db_setup):
    """One uvicorn for the module, on the test database: ``ws://127.0.0.1:<port>``."""
    with asgi_server() as base:
        yield base.replace("http://", "ws://")


def ticket(org, role: str = Role.QA_LEAD) -> dict:
    response = org.client(role).post("/api/v1/live/ticket")
    assert response.status_code == 201, response.content
    return response.json()


def refused(url: str, **options) -> tuple[int, str]:
    """Connect, and return the close code and reason the server ends the socket with."""
    with (
        connect(url, open_timeout=10, **options) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=10)
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_an_api_client_opens_the_socket_with_a_ticket_not_its_token(org, server):
    issued = ticket(org)
    expires_at = datetime.fromisoformat(issued["expires_at"])
    left = (expires_at - timezone.now()).total_seconds()
    assert TICKET_SECONDS - 5 < left <= TICKET_SECONDS
    token = Token.objects.get(user=org.qa_lead.user).key
    assert token not in issued["url"]
    assert issued["url"] == f"/ws/orgs/acme/?ticket={issued['ticket']}"
    with connect(server + issued["url"], open_timeout=10) as socket:
        snapshot = checked(json.loads(socket.recv(timeout=10)))
        assert (snapshot["type"], snapshot["seq"]) == ("snapshot", 1)
        assert snapshot["data"] | {"cursor": None} == {
            "organization": "acme",
            "role": "qa_lead",
            "member": org.qa_lead.pk,
            "cursor": None,
            "project": None,
            "leaderboard": None,
            "stats": [],
        }
        written = LiveEvent.objects.create(
            organization=org.organization,
            staff=True,
            type="import.progressed",
            data={"import": 1, "project": 1, "status": "running", "rows_read": 0,
                  "created": None, "invalid": None},
        )  # fmt: skip
        message = checked(json.loads(socket.recv(timeout=10)))
        assert message["seq"] == 2
        assert [(e["id"], e["type"]) for e in message["data"]["events"]] == [
            (written.pk, written.type)
        ]


class _IssuedTwoMinutesAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(timezone.now().timestamp()) - 2 * TICKET_SECONDS)


def test_a_refused_socket_says_why_in_its_close_code(org, other_org, server):
    valid = ticket(org)["ticket"]
    elsewhere = ticket(other_org)["ticket"]
    expired = _IssuedTwoMinutesAgo(salt=SALT).sign_object(
        {"user": org.qa_lead.user_id, "organization": "acme"}
    )
    token = Token.objects.get(user=org.qa_lead.user).key
    acme = f"{server}/ws/orgs/acme/"
    # No credentials at all, and the long-lived token in the URL, which is never read.
    assert refused(acme, origin=ORIGIN)[0] == CLOSE_UNAUTHENTICATED
    assert refused(f"{acme}?token={token}", origin=ORIGIN)[0] == CLOSE_UNAUTHENTICATED
    # Tickets that are not good for this socket: forged, expired, of another organization.
    for bad in (valid[:-4] + "AAAA", expired, elsewhere, "not-a-ticket"):
        code, reason = refused(f"{acme}?ticket={quote(bad)}")
        assert code == CLOSE_UNAUTHENTICATED and "ticket" in reason, bad
    # A malformed query: a ticket twice, or a cursor that is no id.
    assert refused(f"{acme}?ticket={valid}&ticket={valid}")[0] == CLOSE_BAD_REQUEST
    assert refused(f"{acme}?ticket={valid}&after=x")[0] == CLOSE_BAD_REQUEST
    # An organization that is none of the user's, named with a session.
    cookie = dict(session_headers(org.manager.user))[b"cookie"].decode()
    nowhere = refused(
        f"{server}/ws/orgs/nowhere/", origin=ORIGIN, additional_headers=[("cookie", cookie)]
    )
    assert nowhere[0] == CLOSE_NOT_FOUND
    # A member whose membership ended after the ticket was issued.
    annotator_ticket = ticket(org, Role.ANNOTATOR)["ticket"]
    Member.objects.filter(pk=org.annotator_member.pk).update(is_active=False)
    code, reason = refused(f"{acme}?ticket={annotator_ticket}")
    assert code == CLOSE_ACCESS_ENDED and "ended" in reason
    # The valid ticket still opens the socket: none of the above spent it.
    with connect(f"{acme}?ticket={valid}", open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"


def test_a_ticket_socket_closes_when_the_annotator_is_offboarded(org, server):
    issued = ticket(org, Role.ANNOTATOR)
    with connect(server + issued["url"], open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["data"]["role"] == "annotator"
        services.annotator_set_status(
            annotator=org.annotator, action="offboard", actor=org.manager.user, reason="Left"
        )
        with pytest.raises(ConnectionClosed) as closed:
            # The relay checks every socket's access every 2 s.
            socket.recv(timeout=10)
    assert closed.value.rcvd.code == CLOSE_ACCESS_ENDED
