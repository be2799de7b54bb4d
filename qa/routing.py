from django.urls import re_path

from . import consumers

websocket_urlpatterns = [
    re_path(r"^ws/orgs/(?P<slug>[-\w]+)/?$", consumers.OrganizationEventsConsumer.as_asgi()),
]
