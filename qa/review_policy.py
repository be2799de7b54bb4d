"""A project's review policy: its review layers, in order, and its error taxonomy.

The policy is set whole (``review_policy_set``). Layers are matched by position: the list's
first entry changes layer 1 in place, the second layer 2, and so on; entries past the current
layers add layers, and layers past the list's end are removed. A layer that holds review items
(waiting, leased, judged or not sampled) is never removed, so that the record of what was
sampled and judged at it, which adaptive sampling and the QA leads read, never silently
vanishes: the change is refused (409 ``in_use``) naming it, and setting its ``sample_rate`` and
``floor_rate`` to 0 stops it sampling instead. Error tags are matched by code: a tag a verdict
used is never removed either (409 ``in_use``), while its description may change.

A changed rate applies to what arrives at the layer from then on: decisions already recorded
stand. A layer given to QA leads only ends the reviewers' leases there (``reviews.sql``).
Every change is audited (``review_policy.updated``) with the policy before and after.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction

from config.errors import Conflict, ErrorCode, FieldErrors
from tasks.locks import lock_project
from tasks.models import Project, ProjectStatus
from workforce.models import MAX_SKILL_LEVEL, AuditVerb, Domain, Organization
from workforce.services import audit_record

from .locks import lock_review_layers
from .models import ErrorTag, Review, ReviewerRole, ReviewItem, ReviewLayer
from .selectors import review_policy

# How many layers a policy may have, and tags a taxonomy: each claim walks a member's layers,
# and a reviewer reads the whole taxonomy with every item.
MAX_LAYERS = 10
MAX_ERROR_TAGS = 100
LAYER_FIELDS = ["name", "sample_rate", "floor_rate", "role", "min_skill_level"]


def review_policy_check(
    *, organization: Organization, layers: list[dict] | None, error_tags: list[dict] | None
) -> dict[str, Domain]:
    """Refuse a policy that cannot be, naming every bad field by its path at once.

    Return the required domains the layers name, by slug. Either part may be None when the
    request's own shape was refused already.
    """
    problems = FieldErrors()
    slugs = set()
    for index, layer in enumerate(layers or []):
        path = f"layers.{index}"
        sample, floor = layer.get("sample_rate"), layer.get("floor_rate", 0.0)
        for name, value in (("sample_rate", sample), ("floor_rate", floor)):
            if value is not None and not 0 <= value <= 1:
                problems.add(f"{path}.{name}", f"{value} is not between 0 and 1.")
        if sample is not None and floor is not None and floor > sample:
            problems.add(f"{path}.floor_rate", f"{floor} is above its sample_rate {sample}.")
        if layer.get("role", ReviewerRole.REVIEWER) not in ReviewerRole.values:
            problems.add(f"{path}.role", f"One of {', '.join(ReviewerRole.values)}.")
        if not 0 <= layer.get("min_skill_level", 0) <= MAX_SKILL_LEVEL:
            problems.add(f"{path}.min_skill_level", f"From 0 to {MAX_SKILL_LEVEL}.")
        named = layer.get("required_domains", [])
        for slug in sorted({s for s in named if named.count(s) > 1}):
            problems.add(f"{path}.required_domains", f"{slug!r} is named twice.")
        slugs.update(named)
    if layers is not None and len(layers) > MAX_LAYERS:
        problems.add("layers", f"At most {MAX_LAYERS} layers.")
    domains = {d.slug: d for d in Domain.objects.filter(organization=organization, slug__in=slugs)}
    for index, layer in enumerate(layers or []):
        for slug in layer.get("required_domains", []):
            if slug not in domains:
                problems.add(f"layers.{index}.required_domains", f"Unknown domain {slug!r}.")
    first_use: dict[str, int] = {}
    for index, tag in enumerate(error_tags or []):
        code = tag.get("code")
        if code in first_use:
            problems.add(f"error_tags.{index}.code", f"Repeated: error_tags.{first_use[code]}.")
        first_use.setdefault(code, index)
    if error_tags is not None and len(error_tags) > MAX_ERROR_TAGS:
        problems.add("error_tags", f"At most {MAX_ERROR_TAGS} tags.")
    problems.raise_if_any("Invalid review policy.")
    return domains


# The codes among ``%s`` that the project's verdicts used; reads the project's reviews once.
_TAGS_USED_SQL = f"""
SELECT DISTINCT code
FROM {Review._meta.db_table} r, unnest(r.tags) AS code
WHERE r.project_id = %s AND r.tags && %s::varchar[] AND code = ANY(%s::varchar[])
ORDER BY code
"""  # noqa: S608


def _refuse_removals(project: Project, removed: list[ReviewLayer], codes: list[str]) -> None:
    """Refuse to remove layers that hold review items, and tags that verdicts used."""
    problems = FieldErrors()
    held = set(
        ReviewItem.objects.filter(layer__in=removed).values_list("layer_id", flat=True).distinct()
    )
    for layer in removed:
        if layer.pk in held:
            problems.add(
                "layers",
                f"Layer {layer.position} ({layer.name}) holds review items and cannot be removed; "
                "set its sample_rate and floor_rate to 0 to stop it sampling.",
            )
    if codes:
        with connection.cursor() as cursor:
            cursor.execute(_TAGS_USED_SQL, [project.pk, codes, codes])
            used = [code for (code,) in cursor.fetchall()]
        for code in used:
            problems.add("error_tags", f"{code!r} is used by verdicts and cannot be removed.")
    if problems:
        raise Conflict(
            "The review policy would remove what reviews hold.",
            code=ErrorCode.IN_USE,
            fields=problems.fields,
        )


@transaction.atomic
def review_policy_set(
    *,
    project: Project,
    layers: list[dict],
    error_tags: list[dict],
    actor: AbstractBaseUser | None,
) -> dict:
    """Set the project's review layers (in order) and error taxonomy; return the policy.

    Audited when something changed. An archived project's policy stays as it is (409).
    """
    domains = review_policy_check(
        organization=project.organization, layers=layers, error_tags=error_tags
    )
    project = lock_project(project.pk)
    if project.status == ProjectStatus.ARCHIVED:
        raise Conflict(
            "The project is archived; unarchive it to change its review policy.",
            code=ErrorCode.INVALID_STATUS,
        )
    current = {layer.position: layer for layer in lock_review_layers(project.pk)}
    tags = {tag.code: tag for tag in ErrorTag.objects.filter(project=project)}
    kept_codes = {tag["code"] for tag in error_tags}
    removed = [layer for position, layer in current.items() if position > len(layers)]
    gone_codes = sorted(set(tags) - kept_codes)
    _refuse_removals(project, removed, gone_codes)
    before = review_policy(project=project)

    for position, spec in enumerate(layers, start=1):
        layer = current.get(position) or ReviewLayer(project=project, position=position)
        for name in LAYER_FIELDS:
            if name in spec:
                setattr(layer, name, spec[name])
        layer.save()
        layer.required_domains.set([domains[slug] for slug in spec.get("required_domains", [])])
    ReviewLayer.objects.filter(pk__in=[layer.pk for layer in removed]).delete()

    for spec in error_tags:
        tag = tags.get(spec["code"])
        description = spec.get("description", "")
        if tag is None:
            ErrorTag.objects.create(project=project, code=spec["code"], description=description)
        elif tag.description != description:
            tag.description = description
            tag.save(update_fields=["description"])
    ErrorTag.objects.filter(project=project, code__in=gone_codes).delete()

    after = review_policy(project=project)
    if after != before:
        audit_record(
            organization=project.organization,
            actor=actor,
            verb=AuditVerb.REVIEW_POLICY_UPDATED,
            target=project,
            before=before,
            after=after,
        )
    return after
