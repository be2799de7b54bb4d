"""Query-string filters of the assignment and annotation lists.

A bad value answers 400 naming the parameter (``OrganizationApi.filtered``).
"""

import django_filters

from .models import Annotation, Assignment, AssignmentStatus


class AssignmentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AssignmentStatus.choices)
    project = django_filters.NumberFilter(field_name="project_id")
    annotator = django_filters.NumberFilter(field_name="annotator_id")

    class Meta:
        model = Assignment
        fields = ["status"]


class AnnotationFilter(django_filters.FilterSet):
    project = django_filters.NumberFilter(field_name="project_id")
    annotator = django_filters.NumberFilter(field_name="annotator_id")
    task = django_filters.NumberFilter(field_name="task_id")

    class Meta:
        model = Annotation
        fields = ["project"]
