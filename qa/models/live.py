"""The live-event outbox: every live event is a row, written in the transaction of the change it
tells about, and delivered to sockets by each ASGI process's relay (``qa/relay.py``)."""

from django.db import models

from workforce.models import Member, Organization


class LiveEventType(models.TextChoices):
    """The events sockets receive, in batches; ``qa.live_schema`` gives each one's ``data``.

    Each is a row of the outbox but ``stats.updated``, which the relay makes from the stats
    rows (``qa/live.py``).
    """

    # Written by the database when a claim inserts its assignment (``qa/live.sql``).
    ASSIGNMENT_CLAIMED = "assignment.claimed"
    ANNOTATION_SUBMITTED = "annotation.submitted"
    IMPORT_PROGRESSED = "import.progressed"
    # Staff only: a gold submission's score never reaches the annotator.
    GOLD_SCORED = "gold.scored"
    QUALITY_ALERT = "quality.alert"
    # Staff only: a reviewer's verdict, with the score it gave the author's work.
    REVIEW_COMPLETED = "review.completed"
    # Never a row: an annotator's figures of the hour, at most once a second each; staff get
    # every figure, the annotator their own throughput alone.
    STATS_UPDATED = "stats.updated"


# A row no socket receives: a membership, its role, an account or an annotator's status changed
# (written by the database, ``qa/live.sql``). The relay checks that member's sockets' access at
# once instead of at its next periodic check.
ACCESS_CHANGED = "access.changed"
OUTBOX_TYPES = [
    *(
        (value, label)
        for value, label in LiveEventType.choices
        if value != LiveEventType.STATS_UPDATED
    ),
    (ACCESS_CHANGED, "Access Changed"),
]


class CurrentTransactionId(models.Func):
    """The writing transaction's id as a bigint (``xid8`` has no cast to it but through text).

    The relay reads it to find rows whose transaction was still open when it last looked:
    ids come from a sequence when a row is inserted, and rows become visible when their
    transaction commits, so a row may appear below ids already delivered.
    """

    function = "pg_current_xact_id"
    output_field = models.BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = super().as_sql(compiler, connection, **extra_context)
        return f"({sql})::text::bigint", params


class LiveEvent(models.Model):
    """One live event and its audience: the organization's staff, and/or one member.

    No foreign-key constraints: checking them would lock the organization and member rows
    (``FOR KEY SHARE``) in every submission's transaction for nothing. Rows live for
    ``qa.live.RETENTION`` and are pruned by ``qa.prune_live_events``; a deleted organization's
    rows go with them.
    """

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # Catch-up reads go by id, never by organization or member: no index on either.
    # The one member, besides staff, who may see the event (the annotator whose work it is).
    member = models.ForeignKey(
        Member,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
    )
    staff = models.BooleanField(default=True)
    type = models.CharField(max_length=64, choices=OUTBOX_TYPES)
    data = models.JSONField()
    created_at = models.DateTimeField(db_default=models.functions.Now())
    xid = models.BigIntegerField(db_default=CurrentTransactionId())

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["xid"], name="qa_liveevent_xid")]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"
