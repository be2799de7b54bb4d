"""Every read of the workforce registry, scoped to what the asking member may see."""

from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import (
    Annotator,
    AnnotatorSkill,
    AuditEvent,
    Certification,
    Domain,
    Invitation,
    InvitationStatus,
    Member,
)
from .tenancy import STAFF


def memberships_of(*, user) -> QuerySet[Member]:
    return Member.objects.filter(user=user, is_active=True).select_related("organization", "user")


def member_list(*, member: Member) -> QuerySet[Member]:
    qs = Member.objects.filter(organization=member.organization).select_related(
        "user", "organization"
    )
    if member.role not in STAFF:
        qs = qs.filter(pk=member.pk)
    return qs


def invitation_list(*, member: Member) -> QuerySet[Invitation]:
    """The organization's invitations, answered ones included."""
    return Invitation.objects.filter(organization=member.organization).select_related(
        "organization"
    )


def invitations_for(*, user) -> QuerySet[Invitation]:
    """The open invitations addressed to the user's login."""
    return Invitation.objects.filter(
        login=user.get_username(), status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
    ).select_related("organization")


def annotator_list(*, member: Member) -> QuerySet[Annotator]:
    """Annotators the member may see, with skills and certifications loaded in two queries."""
    qs = (
        Annotator.objects.filter(member__organization=member.organization)
        .select_related("member__user")
        .prefetch_related(
            Prefetch("skills", queryset=AnnotatorSkill.objects.order_by("skill")),
            Prefetch(
                "certifications",
                queryset=Certification.objects.with_state()
                .select_related("domain")
                .order_by("domain__slug"),
            ),
        )
    )
    if member.role not in STAFF:
        qs = qs.filter(member=member)
    return qs


def annotator_get(*, member: Member, annotator_id: int) -> Annotator:
    return get_object_or_404(annotator_list(member=member), pk=annotator_id)


def annotators_with_skill(qs: QuerySet[Annotator], *, skill: str, min_level: int) -> QuerySet:
    return qs.filter(
        Exists(
            AnnotatorSkill.objects.filter(
                annotator=OuterRef("pk"), skill=skill, level__gte=min_level
            )
        )
    )


def annotators_certified_in(qs: QuerySet[Annotator], *, domain_slug: str) -> QuerySet:
    """Keep annotators with a certification in force in the domain (expiry counted now)."""
    return qs.filter(
        Exists(
            Certification.objects.in_force().filter(
                annotator=OuterRef("pk"), domain__slug=domain_slug
            )
        )
    )


def domain_list(*, member: Member) -> QuerySet[Domain]:
    return Domain.objects.filter(organization=member.organization)


def domain_get(*, member: Member, domain_id: int) -> Domain:
    return get_object_or_404(domain_list(member=member), pk=domain_id)


def certification_list(*, member: Member) -> QuerySet[Certification]:
    """Certifications the member may see, each with its ``state`` as it stands now."""
    qs = (
        Certification.objects.with_state()
        .filter(annotator__member__organization=member.organization)
        .select_related("domain", "annotator__member__user", "issued_by")
    )
    if member.role not in STAFF:
        qs = qs.filter(annotator__member=member)
    return qs


def certification_get(*, member: Member, certification_id: int) -> Certification:
    return get_object_or_404(certification_list(member=member), pk=certification_id)


def audit_event_list(*, member: Member) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organization=member.organization).select_related(
        "actor", "annotator__member__user"
    )
