"""Creating organizations, the tenants."""

from django.db import transaction

from config.errors import ValidationFailed
from workforce.models import Organization


@transaction.atomic
def organization_create(*, name: str, slug: str) -> Organization:
    """Create a tenant."""
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationFailed(
            f"An organization with slug {slug!r} exists.", fields={"slug": ["Already taken."]}
        )
    return Organization.objects.create(name=name, slug=slug)
