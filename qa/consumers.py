"""WebSocket consumers: authenticate, join the relay, forward events. No rules live here."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from . import live
from .relay import (
    CLOSE_ACCESS_ENDED,
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    LiveSocket,
    relay,
)
from .selectors import SocketKey, had_membership, live_access, live_project_visible, live_snapshot
from .tickets import ticket_user

_NO_ID = object()


def _parameters(query_string: bytes) -> dict[str, str] | None:
    """The query's parameters, each with its one value; None when one is given twice."""
    query = parse_qs(query_string.decode("latin-1"))
    if any(len(values) != 1 for values in query.values()):
        return None
    return {name: values[0] for name, values in query.items()}


def _id(value: str | None):
    """A parameter that must be an id when given: the int, None when absent, else ``_NO_ID``."""
    if value is None:
        return None
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else _NO_ID


class OrganizationEventsConsumer(AsyncWebsocketConsumer):
    """Live events of one organization the user belongs to:
    ``/ws/orgs/<slug>/[?project=<id>][&after=<id>][&ticket=<ticket>]``.

    A browser is known by its session; an API client by a ticket from ``POST
    /api/v1/live/ticket`` (``qa/tickets.py``). Staff receive the organization's events;
    everyone receives the events about their own work; ``project`` narrows both to one
    project. The messages and their order are told in ``qa/live.py``; a refused socket's close
    code says why (``qa/relay.py``).
    """

    # Events come from this process's relay, which reads the outbox: no channel layer (and no
    # Redis) is on a socket's path.
    channel_layer_alias = None

    socket: LiveSocket | None = None

    async def connect(self):
        query = _parameters(self.scope.get("query_string", b""))
        after = _id(query.get("after")) if query is not None else None
        project_id = _id(query.get("project")) if query is not None else None
        if query is None or _NO_ID in (after, project_id):
            await self.refuse(
                CLOSE_BAD_REQUEST,
                "Malformed query: a parameter given twice, or an after or project not an id.",
            )
            return
        ticket = query.get("ticket")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        if ticket is not None:
            # A ticket names its user: no session is involved, and none is checked later.
            user_id = ticket_user(ticket, organization=slug)
            key = SocketKey(user_id, slug, None) if user_id is not None else None
        else:
            user = self.scope.get("user")
            session = self.scope.get("session")
            key = (
                SocketKey(user.pk, slug, session.session_key if session is not None else None)
                if user is not None and user.is_authenticated
                else None
            )
        if key is None:
            await self.refuse(
                CLOSE_UNAUTHENTICATED,
                "Ticket forged, expired or for another organization; "
                "get one from POST /api/v1/live/ticket."
                if ticket is not None
                else "Log in, or send a ticket from POST /api/v1/live/ticket.",
            )
            return
        (access,) = await database_sync_to_async(live_access)([key])
        if access is None:
            member = await database_sync_to_async(had_membership)(
                user_id=key.user_id, organization=slug
            )
            if member:
                await self.refuse(CLOSE_ACCESS_ENDED, "Your access to this organization ended.")
            else:
                await self.refuse(CLOSE_NOT_FOUND, "No such organization among yours.")
            return
        if project_id is not None and not await database_sync_to_async(live_project_visible)(
            access=access, project_id=project_id
        ):
            await self.refuse(CLOSE_NOT_FOUND, "No such project among yours.")
            return
        await self.accept()
        self.socket = LiveSocket(
            key=key,
            access=access,
            organization=slug,
            project_id=project_id,
            send=self._send_text,
            close=self.close,
        )
        cursor = await relay().join(self.socket, after=after)
        # Read once joined: whatever happens after it reaches the socket behind it.
        snapshot = await database_sync_to_async(live_snapshot)(
            access=access, organization=slug, project_id=project_id, cursor=cursor
        )
        self.socket.begin(live.message(live.SNAPSHOT, snapshot))

    async def _send_text(self, text: str) -> None:
        # Straight to the server (``config.asgi``): the relay sends every socket a message a
        # tick, and the layers between (the consumer's, the session middleware's) cost as much
        # as the sending itself.
        await self.scope["server_send"]({"type": "websocket.send", "text": text})

    async def refuse(self, code: int, reason: str) -> None:
        """Close with a code that says why (``qa/relay.py`` lists them), and a reason.

        Accepted first: a socket closed before it is accepted reaches a client through a real
        server as a bare HTTP 403, and the code would be lost. Nothing is sent before the close.
        """
        await self.accept()
        await self.close(code=code, reason=reason)

    async def disconnect(self, code):
        if self.socket is not None:
            relay().leave(self.socket)
