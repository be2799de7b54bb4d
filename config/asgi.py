"""ASGI entry point: HTTP and WebSocket routing in one application."""

import os
from urllib.parse import parse_qs

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.middleware import refuse_oversized_bodies  # noqa: E402
from qa.routing import websocket_urlpatterns  # noqa: E402


def origin_or_ticket(app):
    """Refuse a socket from a page of another site; admit one without an Origin that carries a
    ticket.

    Browsers always send ``Origin``: a foreign page's socket, which would ride on the user's
    session cookie, is refused (``AllowedHostsOriginValidator``). An API client sends none and
    proves itself with a ticket in the query (``qa/tickets.py``), which no other site can
    hold; the consumer checks it.
    """
    validated = AllowedHostsOriginValidator(app)

    async def guarded(scope, receive, send):
        # The server's own send, for the live relay's batches: past the session middleware's,
        # which looks at the session before each message, for nothing once a socket is open.
        scope = dict(scope, server_send=send)
        headers = dict(scope.get("headers") or ())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if b"origin" not in headers and "ticket" in query:
            return await app(scope, receive, send)
        return await validated(scope, receive, send)

    return guarded


application = ProtocolTypeRouter(
    {
        "http": refuse_oversized_bodies(django_asgi_app),
        "websocket": origin_or_ticket(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
