"""Live events: small JSON messages pushed to an organization's WebSocket group after commit."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone


def organization_group(organization_id: int) -> str:
    return f"org.{organization_id}"


def live_event(event_type: str, data: dict) -> dict:
    """Shape one message as every client receives it: ``{"type", "at", "data"}``."""
    return {"type": event_type, "at": timezone.now().isoformat(), "data": data}


def send_to_organization(organization_id: int, event_type: str, data: dict) -> None:
    """Push an event to everyone of the organization watching; call only after commit."""
    async_to_sync(get_channel_layer().group_send)(
        organization_group(organization_id),
        {"type": "live.event", "event": live_event(event_type, data)},
    )
