from django.apps import AppConfig


class QaConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "qa"
    verbose_name = "Quality"

    def ready(self) -> None:
        """Subscribe to the domain events of ``tasks``: every reaction is listed here, with
        the readers ``tasks`` calls for what quality knows."""
        from tasks import events, exports, staffing
        from tasks import selectors as task_selectors

        from . import reactions, selectors, stats

        events.subscribe(
            events.ANNOTATION_SUBMITTED,
            reactions.on_annotation_submitted,
            phase=events.IN_TRANSACTION,
        )
        # A fresh submission's live event and stats are written by the statement storing it;
        # one of a regular task in a project without review layers is that statement alone.
        events.submitted_sql_set(
            events.SubmittedSql(records=stats.submission_records, reacts=stats.submission_reacts)
        )
        events.subscribe(
            events.IMPORT_PROGRESSED, reactions.on_import_progressed, phase=events.AFTER_COMMIT
        )
        events.subscribe(
            events.GOLD_ANSWER_SET, reactions.on_gold_answer_set, phase=events.IN_TRANSACTION
        )
        events.subscribe(
            events.TASK_COMPLETED, reactions.on_task_completed, phase=events.AFTER_COMMIT
        )
        # The export's final answer: what review made final, else the stored consensus.
        exports.answers_reader_set(selectors.final_answers)
        # Staffing ranks qualified annotators by their accuracy.
        staffing.accuracy_reader_set(
            lambda project, ids: selectors.staffing_accuracy(project=project, annotator_ids=ids)
        )
        # An annotator's assignment back for rework shows the rejection behind it.
        task_selectors.rework_reader_set(selectors.rework_notes)
