"""The header's links to the pages the member's role works in (``qa.pages.navigation``)."""

from django import template

from qa.pages import navigation

register = template.Library()


@register.simple_tag(takes_context=True)
def role_links(context) -> list[dict]:
    request = context.get("request")
    return navigation(request) if request is not None else []
