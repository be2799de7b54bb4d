"""Live events: small JSON messages pushed to WebSocket groups after commit.

Each connection sees what its member may see through the API: staff (managers and QA leads) join
their organization's staff group and receive everything that happens in it; every member also
joins a group of their own, for events about their own work.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone


def staff_group(organization_id: int) -> str:
    return f"org.{organization_id}.staff"


def member_group(member_id: int) -> str:
    return f"member.{member_id}"


def live_event(event_type: str, data: dict) -> dict:
    """Shape one message as every client receives it: ``{"type", "at", "data"}``."""
    return {"type": event_type, "at": timezone.now().isoformat(), "data": data}


def send_live(
    event_type: str, data: dict, *, organization_id: int, member_id: int | None = None
) -> None:
    """Push an event to the organization's staff and, if given, to one member; after commit."""
    message = {"type": "live.event", "event": live_event(event_type, data)}
    send = async_to_sync(get_channel_layer().group_send)
    send(staff_group(organization_id), message)
    if member_id is not None:
        send(member_group(member_id), message)
