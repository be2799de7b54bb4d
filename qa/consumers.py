"""WebSocket consumers: authenticate, join the relay, forward events. No rules live here."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .relay import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    LiveSocket,
    relay,
)
from .selectors import SocketKey, live_access


class OrganizationEventsConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one organization the user belongs to: ``/ws/orgs/<slug>/[?after=<id>]``.

    Staff receive the organization's events; everyone receives the events about their own work.
    The messages and their order are told in ``qa/live.py``.
    """

    # Events come from this process's relay, which reads the outbox: no channel layer (and no
    # Redis) is on a socket's path.
    channel_layer_alias = None

    socket: LiveSocket | None = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        after = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("after")
        if after is not None and not (
            len(after) == 1 and after[0].isascii() and after[0].isdigit() and len(after[0]) < 19
        ):
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        session = self.scope.get("session")
        key = SocketKey(user.pk, slug, session.session_key if session is not None else None)
        (access,) = await database_sync_to_async(live_access)([key])
        if access is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.accept()
        self.socket = LiveSocket(
            key=key, access=access, organization=slug, send=self.send_json, close=self.close
        )
        await relay().join(self.socket, after=int(after[0]) if after else None)

    async def disconnect(self, code):
        if self.socket is not None:
            relay().leave(self.socket)
