"""Query-string filters of the assignment and annotation lists.

A bad value answers 400 naming the parameter (``OrganizationApi.filtered``).
"""

import django_filters

from workforce.filters import IdFilter, TrueOrFalseFilter

from .models import Annotation, Assignment, AssignmentStatus, Task, TaskStatus


class AssignmentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AssignmentStatus.choices)
    project = IdFilter(field_name="project_id")
    annotator = IdFilter(field_name="annotator_id")

    class Meta:
        model = Assignment
        fields = ["status"]


class AnnotationFilter(django_filters.FilterSet):
    project = IdFilter(field_name="project_id")
    annotator = IdFilter(field_name="annotator_id")
    task = IdFilter(field_name="task_id")

    class Meta:
        model = Annotation
        fields = ["project"]


class TaskFilter(django_filters.FilterSet):
    """Filters of the staff task list; ``status`` is the one ``selectors.with_task_status`` reads."""

    status = django_filters.ChoiceFilter(choices=TaskStatus.choices)
    gold = TrueOrFalseFilter(field_name="is_gold")
    external_id = django_filters.CharFilter(field_name="external_id", max_length=200)

    class Meta:
        model = Task
        fields = ["status"]
