"""Quality's REST views: the ticket that opens the live-events WebSocket."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.tenancy import ANYONE

from . import tickets


class LiveTicketOut(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
    url = serializers.CharField(help_text="The socket's path, ticket included.")


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["live"])
class LiveTicketApi(OrganizationApi):
    """A ticket to open the live-events WebSocket as yourself in this organization.

    Open ``/ws/orgs/<slug>/?ticket=<ticket>`` within a minute (``expires_at``); the token itself
    never goes in a URL. Ask for a new ticket for every connection.
    """

    roles = {"POST": ANYONE}

    @extend_schema(request=None, responses={201: LiveTicketOut})
    def post(self, request):
        ticket, expires_at = tickets.ticket_issue(member=self.member)
        slug = self.member.organization.slug
        body = {
            "ticket": ticket,
            "expires_at": expires_at,
            "url": f"/ws/orgs/{slug}/?ticket={ticket}",
        }
        return Response(LiveTicketOut(body).data, status=status.HTTP_201_CREATED)
