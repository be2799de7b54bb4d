"""Helpers of the live-event tests: sockets on the real ASGI application, and every message
they receive checked against the live JSON Schema (``qa.live_schema.SCHEMA``)."""

import asyncio
import json
import weakref

from channels.testing import WebsocketCommunicator
from jsonschema import Draft202012Validator

from config.asgi import application
from qa import live, live_schema

Draft202012Validator.check_schema(live_schema.SCHEMA)


def _validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


VALIDATOR = _validator(live_schema.SCHEMA)
# One message type's schema alone, whose errors say more than the whole document's oneOf.
BY_TYPE = {
    name: _validator(live_schema.SCHEMA | {"oneOf": [{"$ref": f"#/$defs/{name}"}]})
    for name in (live.SNAPSHOT, live.BATCH, live.RESYNC)
}


def checked(message: dict) -> dict:
    """The message, after failing unless it is one the schema describes."""
    validator = BY_TYPE.get(message.get("type"), VALIDATOR)
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(message)]
    assert not errors and VALIDATOR.is_valid(message), (errors, message)
    return message


def checked_event(event_type: str, data: dict, *, id: int | None = 1) -> dict:
    """An event's data as a batch would carry it, checked against its type's schema."""
    event = {"type": event_type, "at": "2026-01-01T00:00:00Z", "data": data}
    if id is not None:
        event["id"] = id
    checked({"seq": 1, "type": "batch", "at": event["at"], "data": {"events": [event]}})
    return event


async def open_socket(headers, path: str = "/ws/orgs/acme/") -> tuple[WebsocketCommunicator, dict]:
    """Connect, and return the socket with its first message, the snapshot."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    snapshot = await receive(communicator)
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == 1
    return communicator, snapshot


async def receive(communicator: WebsocketCommunicator, timeout: float = 5) -> dict:
    """The next message, checked against the schema."""
    return checked(await communicator.receive_json_from(timeout=timeout))


async def receive_events(
    communicator: WebsocketCommunicator, count: int, *, timeout: float = 5, types=None
) -> list[dict]:
    """The events (of ``types``, when given) of as many batches as it takes to read ``count``
    of them: more when the last batch carries more. Fails on any other message."""
    found: list[dict] = []
    while len(found) < count:
        message = await receive(communicator, timeout)
        assert message["type"] == "batch", message
        found += [e for e in message["data"]["events"] if types is None or e["type"] in types]
    return found


async def first_event(socket_, event_type: str | None, *, timeout: float = 10) -> dict:
    """On a client socket of the ``websockets`` library: the first event of ``event_type`` (of
    any type: None) in the batches it receives, every message checked against the schema on
    the way. The rest of its batch waits for the next call."""
    waiting = _waiting.setdefault(socket_, [])
    async with asyncio.timeout(timeout):
        while True:
            while waiting:
                event = waiting.pop(0)
                if event_type is None or event["type"] == event_type:
                    return event
            message = checked(json.loads(await socket_.recv()))
            assert message["type"] == "batch", message
            waiting += message["data"]["events"]


# Events a ``websockets`` client socket received and ``first_event`` did not hand out yet.
_waiting: "weakref.WeakKeyDictionary[object, list[dict]]" = weakref.WeakKeyDictionary()


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 5) -> int:
    """Read until the server closes the socket; return its close code."""
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return output.get("code")
