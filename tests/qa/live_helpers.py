"""Helpers of the live-event tests: sockets on the real ASGI application, checked messages."""

from channels.testing import WebsocketCommunicator

from config.asgi import application
from qa.live import schema_errors


async def open_socket(headers, path: str = "/ws/orgs/acme/") -> tuple[WebsocketCommunicator, dict]:
    """Connect, and return the socket with its first message, the snapshot."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    snapshot = await receive(communicator)
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == 1
    return communicator, snapshot


async def receive(communicator: WebsocketCommunicator, timeout: float = 5) -> dict:
    """The next message, checked against its type's schema."""
    message = await communicator.receive_json_from(timeout=timeout)
    assert not schema_errors(message), (schema_errors(message), message)
    return message


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 5) -> int:
    """Read until the server closes the socket; return its close code."""
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return output.get("code")
