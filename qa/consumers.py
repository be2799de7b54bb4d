"""WebSocket consumers: authenticate, join groups, forward events. No rules live here."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from workforce.selectors import memberships_of
from workforce.tenancy import STAFF

from .live import live_event, member_group, staff_group


class OrganizationEventsConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one organization the user belongs to: ``/ws/orgs/<slug>/``.

    Staff receive the organization's events; everyone receives the events about their own work.
    """

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
        # Channels leaves ``self.groups`` by itself when the socket closes.
        self.groups = [member_group(member.pk)]
        if member.role in STAFF:
            self.groups.append(staff_group(member.organization_id))
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json(live_event("snapshot", {"organization": slug, "role": member.role}))

    async def live_event(self, message):
        await self.send_json(message["event"])
