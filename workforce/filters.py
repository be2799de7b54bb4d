"""Query-string filters for workforce lists; bad values answer 400 naming the parameter."""

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from config.errors import ValidationFailed
from config.storable import BIGINT_MAX

from .models import (
    MAX_SKILL_LEVEL,
    Annotator,
    AnnotatorStatus,
    AuditEvent,
    AuditVerb,
    Certification,
    Skill,
)
from .models import CertificationStatus as CS
from .selectors import annotators_certified_in, annotators_with_skill


# The schema says integer with its range: a number filter would be described as any number.
@extend_schema_field({"type": "integer", "minimum": 1, "maximum": BIGINT_MAX})
class IdFilter(django_filters.NumberFilter):
    """An object's id: a whole number a bigint holds. ``1.5`` is refused, not read as 1."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)


class _TrueOrFalse(forms.NullBooleanField):
    # The raw word reaches to_python: the boolean widgets read any other word as "unknown".
    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        if str(value).lower() in ("true", "1"):
            return True
        if str(value).lower() in ("false", "0"):
            return False
        raise forms.ValidationError("Say true or false.", code="invalid")

    def validate(self, value):
        pass


class TrueOrFalseFilter(django_filters.BooleanFilter):
    """A yes-or-no filter that refuses other words (django-filter reads ``maybe`` as no filter)."""

    field_class = _TrueOrFalse


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_SKILL_LEVEL})
class LevelFilter(IdFilter):
    """A skill level, 0 to ``MAX_SKILL_LEVEL``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_SKILL_LEVEL)
        super().__init__(*args, **kwargs)


class AnnotatorFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AnnotatorStatus.choices)
    skill = django_filters.ChoiceFilter(choices=Skill.choices, method="filter_noop")
    min_level = LevelFilter(
        method="filter_noop", help_text="At least this level in `skill`, which it needs."
    )
    domain = django_filters.CharFilter(method="filter_domain", help_text="Domain slug.")
    language = django_filters.CharFilter(method="filter_language")
    username = django_filters.CharFilter(field_name="member__user__username")

    class Meta:
        model = Annotator
        fields = ["status"]

    def filter_noop(self, queryset, name, value):
        return queryset  # skill and min_level are applied together in filter_queryset

    def filter_domain(self, queryset, name, value):
        return annotators_certified_in(queryset, domain_slug=value)

    def filter_language(self, queryset, name, value):
        # Languages are a JSON list of codes: containment matches the whole code, never a
        # longer one such as "pt-BR" for "pt".
        return queryset.filter(languages__contains=[value])

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        skill = self.form.cleaned_data.get("skill")
        min_level = self.form.cleaned_data.get("min_level")
        if min_level is not None and not skill:
            raise ValidationFailed(
                "min_level needs a skill.", fields={"skill": ["Required with min_level."]}
            )
        if min_level is not None and min_level > MAX_SKILL_LEVEL:
            raise ValidationFailed(
                "Level too high.", fields={"min_level": [f"At most {MAX_SKILL_LEVEL}."]}
            )
        if skill:
            queryset = annotators_with_skill(queryset, skill=skill, min_level=int(min_level or 0))
        return queryset


class CertificationFilter(django_filters.FilterSet):
    annotator = IdFilter(field_name="annotator_id")
    domain = django_filters.CharFilter(field_name="domain__slug")
    status = django_filters.ChoiceFilter(
        choices=CS.choices, method="filter_status", help_text="Status as it stands now."
    )

    class Meta:
        model = Certification
        fields = ["annotator", "domain"]

    def filter_status(self, queryset, name, value):
        # The list's selector annotates each certification's state as it stands now.
        return queryset.filter(state=value)


class AuditEventFilter(django_filters.FilterSet):
    verb = django_filters.ChoiceFilter(choices=AuditVerb.choices)
    verb_prefix = django_filters.CharFilter(field_name="verb", lookup_expr="startswith")
    actor = IdFilter(field_name="actor_id")
    system = TrueOrFalseFilter(field_name="actor", lookup_expr="isnull")
    annotator = IdFilter(field_name="annotator_id")
    target_type = django_filters.CharFilter()
    target_id = IdFilter()
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["verb", "target_type", "target_id"]
