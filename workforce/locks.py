"""Row locks for workforce rows. Take them only through these helpers.

Each helper locks its own table's rows and nothing else (``FOR NO KEY UPDATE OF`` that table).
Rows it joins for the caller (the annotator's member, a certification's domain) are read in the
same query but not locked: locking them too would make every writer of any row sharing them
wait, in an order no caller chose. That is how a re-issue holding the annotator and a
suspension holding the certification (and waiting for the annotator it had joined) deadlocked.

``NO KEY`` because no workforce service changes a key (the id, or a column under a unique
constraint) of a row it locks: other writers of the row still wait, while inserts that merely
reference it (an audit event, a skill, an assignment) do not. A helper for a transaction that
changes a key must take plain ``FOR UPDATE`` instead.

Order, whenever several are taken in one transaction: members, annotator, then certification.
Among all row locks (``tasks/locks.py``) they come after the project and before the slot.
"""

from datetime import datetime

from django.db.models import Q

from .models import Annotator, Certification, CertificationStatus, Member, PendingJob, Role


def lock_member_with_managers(member_id: int) -> Member:
    """Lock a member and the organization's active managers, in id order; return the member.

    A change of role holds the managers so that two managers demoting each other at once are
    told apart: the second waits, then counts the first's result. The member's user and
    organization are read along, not locked.
    """
    member = Member.objects.select_related("user", "organization").get(pk=member_id)
    rows = Member.objects.select_for_update(of=("self",), no_key=True).filter(
        Q(pk=member_id)
        | Q(organization_id=member.organization_id, role=Role.MANAGER, is_active=True)
    )
    list(rows.order_by("pk").values_list("pk", flat=True))
    member.refresh_from_db(fields=["role", "is_active"])
    return member


def lock_annotator(annotator_id: int) -> Annotator:
    """Lock one annotator row so concurrent status, profile or skill changes serialise.

    The member, its user and its organization, which the services audit with, are read along.
    """
    return (
        Annotator.objects.select_for_update(of=("self",), no_key=True)
        .select_related("member__user", "member__organization")
        .get(pk=annotator_id)
    )


def lock_certification(certification_id: int, *, at: datetime) -> Certification:
    """Lock one certification row so concurrent issue/suspend/revoke/renew see each other's result.

    Its domain with the domain's organization, and its annotator, are read along for the audit;
    ``state`` is its status as it stands at ``at``, read under the lock.
    """
    return (
        Certification.objects.with_state(at)
        .select_for_update(of=("self",), no_key=True)
        .select_related("domain__organization", "annotator")
        .get(pk=certification_id)
    )


def lock_certifications_to_expire(*, now: datetime, limit: int) -> list[Certification]:
    """Lock up to ``limit`` active certifications past their expiry, in primary-key order.

    Rows another transaction holds are skipped, not waited for: concurrent expiry runs take
    disjoint batches, and a certification being renewed right now is left to the next run.
    """
    lapsed = (
        Certification.objects.with_state(now)
        .select_for_update(of=("self",), no_key=True, skip_locked=True)
        .select_related("domain__organization", "annotator")
        .filter(status=CertificationStatus.ACTIVE, state=CertificationStatus.EXPIRED)
        # Implied by the state; said so that the (status, expires_at) index finds the rows.
        .filter(expires_at__lte=now)
        .order_by("pk")
    )
    return list(lapsed[:limit])


def lock_due_pending_jobs(*, now: datetime, limit: int) -> list[PendingJob]:
    """Lock up to ``limit`` pending jobs that are due, oldest first.

    Rows another requeue run holds are skipped, not waited for: concurrent runs take disjoint
    batches, so no row is sent twice by two runs. Plain ``FOR UPDATE``: a row sent is deleted.
    """
    due = (
        PendingJob.objects.select_for_update(skip_locked=True)
        .filter(next_attempt_at__lte=now)
        .order_by("pk")
    )
    return list(due[:limit])
