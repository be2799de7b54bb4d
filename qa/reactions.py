"""How quality reacts to what happens in ``tasks``. Subscribed in ``QaConfig.ready()``."""

from workforce.queue import enqueue, run_after_commit

from . import gold as gold_module
from . import jobs, live, reviews, stats, task_agreement


def on_annotation_submitted(*, annotation_id: int, gold: bool, reacts: bool | None = None) -> None:
    """In the transaction of a submission with work left for quality: a gold submission is
    scored and counted, another one meets its project's review layers (a resubmission after a
    rejection, the layer that rejected it); or the submission fails.

    A fresh submission's statement wrote its live event and stats already
    (``stats.submission_records``), and ``reacts`` says whether the project has review layers;
    a resubmission's (``reacts`` None) are written here, in one statement. A fresh submission of
    a regular task in a project without review layers leaves nothing to do: it is not published.
    """
    has_review_layers = stats.submission_record(annotation_id) if reacts is None else reacts
    if gold:
        _score(annotation_id)
    elif has_review_layers:
        reviews.review_submitted(annotation_id)


def _score(annotation_id: int) -> None:
    scored = gold_module.gold_score_record(annotation_id)
    if scored is not None:
        # After commit, quality rules read the accuracy this transaction wrote.
        run_after_commit(jobs.evaluate_quality_rules, scored.annotator_id, scored.project_id)


def on_gold_answer_set(*, task_id: int) -> None:
    """In the transaction that made a task gold or corrected its answer: the task leaves
    agreement, consensus and the review queues (its answer is known: review items still
    waiting or leased are skipped, their leases ended), and its past submissions are rescored
    after commit: due (``qa.gold.gold_rescore_due``) until a run has rescored them all."""
    task_agreement.task_agreement_forget(task_id)
    reviews.review_items_skip(task_id)
    gold_module.gold_rescore_due(task_id)
    enqueue(jobs.rescore_gold, task_id)


def on_import_progressed(*, import_id: int) -> None:
    """After the import's progress commits: the live event joins the outbox.

    After commit, not within: the import writes its progress outside any transaction of its
    own, and an event written inside a long import transaction would reach nobody until the
    end. A process that dies between the two loses one progress message, which the next one
    (or the import's own row) makes good.
    """
    live.record_import_progressed(import_id)


def on_task_completed(*, task_id: int, seats: int) -> None:
    """After a task's last seat committed: its agreement and consensus are computed by a job.

    A task of one seat has none (``qa.task_agreement``): told by the event, so that such tasks
    cost neither a message nor a query.
    """
    if seats >= 2:
        enqueue(jobs.compute_task_agreement, task_id)
