"""WebSocket consumers: authenticate, join groups, forward events. No rules live here."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from workforce.selectors import memberships_of

from .live import live_event, organization_group


class OrganizationEventsConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one organization the user belongs to: ``/ws/orgs/<slug>/``."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        member = await database_sync_to_async(
            lambda: memberships_of(user=user).filter(organization__slug=slug).first()
        )()
        if member is None:
            await self.close(code=4404)
            return
        self.group = organization_group(member.organization_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(live_event("snapshot", {"organization": slug, "role": member.role}))

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def live_event(self, message):
        await self.send_json(message["event"])
