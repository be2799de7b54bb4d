from django.apps import AppConfig


class QaConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "qa"
    verbose_name = "Quality"

    def ready(self) -> None:
        """Subscribe to the domain events of ``tasks``: every reaction is listed here."""
        from tasks import events

        from . import reactions

        events.subscribe(
            events.ANNOTATION_SUBMITTED,
            reactions.on_annotation_submitted,
            phase=events.IN_TRANSACTION,
        )
        events.subscribe(
            events.IMPORT_PROGRESSED, reactions.on_import_progressed, phase=events.AFTER_COMMIT
        )
        events.subscribe(
            events.GOLD_ANSWER_SET, reactions.on_gold_answer_set, phase=events.IN_TRANSACTION
        )
