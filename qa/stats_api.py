"""What a QA lead reads of annotators' work besides accuracy: the hourly stats (``qa.stats``)
of a project's annotators, of one annotator across projects, and your own; and what goes wrong
in one annotator's work in a project."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.api import validated
from config.serializers import Prepared, Rfc3339DateTimeField, json_time
from tasks.selectors import project_get
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi, annotator_of
from workforce.selectors import annotator_get
from workforce.tenancy import ANNOTATOR, STAFF

from . import selectors, stats
from .agreement_report import annotator_confusion

# An annotator's gold scores the drill-down reads by default, and the most one request may ask.
GOLD_SCORES_SHOWN = 200
GOLD_SCORES_MOST = 1000

DEFAULT_RANGE = timedelta(days=7)
# The longest range one request may sum: a quarter.
MAX_RANGE = timedelta(days=92)


class RangeQuery(serializers.Serializer):
    """A range of hours: those that start in [since, until). ``context["latest"]``, when given,
    is where the range ends at the latest (and by default); else it ends now by default."""

    since = Rfc3339DateTimeField(
        required=False, help_text="Start of the range (default: 7 days before `until`)."
    )
    until = Rfc3339DateTimeField(required=False, help_text="End of the range (default: now).")

    def validate(self, data: dict) -> dict:
        latest = self.context.get("latest")
        until = data.get("until") or latest or timezone.now()
        if latest is not None:
            until = min(until, latest)
        if "since" in data:
            since = data["since"]
        elif until - datetime.min.replace(tzinfo=UTC) > DEFAULT_RANGE:
            since = until - DEFAULT_RANGE
        else:
            raise serializers.ValidationError({"until": "Too early for a range before it."})
        if "since" in data and "until" in data and since >= until:
            raise serializers.ValidationError({"since": "Must be before `until`."})
        if until - since > MAX_RANGE:
            raise serializers.ValidationError(
                {"since": f"A range of at most {MAX_RANGE.days} days."}
            )
        return {"since": min(since, until), "until": until}


class StatsQuery(RangeQuery):
    """A range of hours, and whether each hour's row is wanted too."""

    by = serializers.ChoiceField(
        choices=["hour"], required=False, help_text="`hour`: the hourly rows too."
    )

    def validate(self, data: dict) -> dict:
        return super().validate(data) | {"by_hour": data.get("by") == "hour"}


class OwnLiveCountersOut(Prepared):
    """Throughput: the counts and figures an annotator reads of their own work as it happens
    (``qa.stats.OWN_LIVE_FIELDS``; ``qa.stats`` defines each)."""

    claimed = serializers.IntegerField()
    submitted = serializers.IntegerField()
    active_seconds = serializers.FloatField(help_text="Handling time of the submissions.")
    handling_buckets = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Submissions per handling-time bucket; upper bounds in seconds: "
        + ", ".join(str(bound) for bound in stats.HANDLING_BOUNDS[:-1])
        + ", then open.",
    )
    throughput_per_hour = serializers.FloatField(
        allow_null=True, help_text="Submissions per hour with at least one submission."
    )
    handling_median_seconds = serializers.FloatField(
        allow_null=True,
        help_text="Upper bound of the bucket where half the submissions are reached "
        "(the lower bound of the open last bucket).",
    )
    handling_p90_seconds = serializers.FloatField(
        allow_null=True, help_text="As the median, at 90 %."
    )


class OwnCountersOut(OwnLiveCountersOut):
    """Counts and sums, and the figures derived from them (``qa.stats`` defines each)."""

    reviews_accepted = serializers.IntegerField()
    reviews_rejected = serializers.IntegerField()
    reviews_corrected = serializers.IntegerField()
    review_score_sum = serializers.FloatField()
    agreement_sum = serializers.FloatField()
    agreement_count = serializers.IntegerField()
    review_pass_rate = serializers.FloatField(
        allow_null=True, help_text="Accepted / (accepted + rejected + corrected)."
    )
    review_mean_score = serializers.FloatField(
        allow_null=True, help_text="The verdicts' mean score."
    )
    agreement_mean = serializers.FloatField(
        allow_null=True, help_text="Mean agreement with the other annotators of their tasks."
    )


class CountersOut(OwnCountersOut):
    gold_scored = serializers.IntegerField()
    gold_score_sum = serializers.FloatField()
    gold_accuracy = serializers.FloatField(
        allow_null=True, help_text="Gold score sum / gold scored."
    )


class HourOut(CountersOut):
    project = serializers.IntegerField()
    annotator = serializers.IntegerField()
    hour = serializers.DateTimeField(help_text="The start of the UTC hour.")


class OwnHourOut(OwnCountersOut):
    project = serializers.IntegerField()
    annotator = serializers.IntegerField()
    hour = serializers.DateTimeField(help_text="The start of the UTC hour.")


class ProjectAnnotatorStatsOut(CountersOut):
    annotator = serializers.IntegerField()
    username = serializers.CharField()
    hours_worked = serializers.IntegerField(help_text="Hours with at least one submission.")


class ProjectStatsOut(Prepared):
    project = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    annotators = ProjectAnnotatorStatsOut(many=True)
    hours = HourOut(many=True, allow_null=True, help_text="With `by=hour` only.")


class ProjectTotalOut(CountersOut):
    project = serializers.IntegerField()
    hours_worked = serializers.IntegerField(help_text="Hours with at least one submission.")


class ProjectsStatsOut(Prepared):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    projects = ProjectTotalOut(
        many=True, help_text="Projects with work in the range, their annotators summed."
    )


class AnnotatorTotalOut(CountersOut):
    hours_worked = serializers.IntegerField()


class AnnotatorProjectStatsOut(AnnotatorTotalOut):
    project = serializers.IntegerField()
    name = serializers.CharField()


class AnnotatorStatsOut(Prepared):
    annotator = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    total = AnnotatorTotalOut()
    projects = AnnotatorProjectStatsOut(many=True)
    hours = HourOut(many=True, allow_null=True, help_text="With `by=hour` only.")


class OwnTotalOut(OwnCountersOut):
    hours_worked = serializers.IntegerField()


class OwnProjectStatsOut(OwnTotalOut):
    project = serializers.IntegerField()
    name = serializers.CharField()


class OwnTodayTotalOut(OwnLiveCountersOut):
    hours_worked = serializers.IntegerField(help_text="Hours with at least one submission.")


class OwnTodayProjectOut(OwnTodayTotalOut):
    project = serializers.IntegerField()
    name = serializers.CharField()


class OwnTodayOut(Prepared):
    since = serializers.DateTimeField(help_text="The start of today (UTC).")
    total = OwnTodayTotalOut()
    projects = OwnTodayProjectOut(many=True, help_text="Projects worked in today.")


class OwnStatsOut(Prepared):
    annotator = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(help_text="At most the start of today (UTC).")
    total = OwnTotalOut()
    projects = OwnProjectStatsOut(many=True)
    hours = OwnHourOut(many=True, allow_null=True, help_text="With `by=hour` only.")
    today = OwnTodayOut(
        help_text="Today's throughput so far, live (every submission counts alike, gold or "
        "not): whatever `since` and `until` say."
    )


def _shown(found: dict) -> dict:
    """Times as JSON text: the answers are ``Prepared``, served as built."""
    return found | {"since": json_time(found["since"]), "until": json_time(found["until"])}


@extend_schema(parameters=[ORGANIZATION_PARAMETER, StatsQuery], tags=["quality"])
class ProjectStatsApi(OrganizationApi):
    """Each annotator's stats in the project over a range of hours (the last 7 days unless
    `since` and `until` say otherwise; an hour counts when it starts in [since, until)): counts,
    throughput, handling-time median and 90th percentile, gold accuracy, review pass rate,
    agreement. Best throughput first."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=ProjectStatsOut)
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        query = validated(StatsQuery(data=request.query_params))
        return Response(_shown(stats.project_stats(project=project, **query)))


@extend_schema(parameters=[ORGANIZATION_PARAMETER, RangeQuery], tags=["quality"])
class ProjectsStatsApi(OrganizationApi):
    """Every project's stats over a range of hours, its annotators summed (the last 7 days
    unless `since` and `until` say otherwise): the pace the staffing board forecasts from."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=ProjectsStatsOut)
    def get(self, request):
        query = validated(RangeQuery(data=request.query_params))
        found = stats.projects_stats(organization_id=self.member.organization_id, **query)
        return Response(_shown(found))


@extend_schema(parameters=[ORGANIZATION_PARAMETER, StatsQuery], tags=["quality"])
class AnnotatorStatsApi(OrganizationApi):
    """An annotator's stats over a range of hours, in total and per project."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=AnnotatorStatsOut)
    def get(self, request, pk: int):
        annotator = annotator_get(member=self.member, annotator_id=pk)
        query = validated(StatsQuery(data=request.query_params))
        return Response(_shown(stats.annotator_stats(annotator=annotator, **query)))


@extend_schema(parameters=[ORGANIZATION_PARAMETER, StatsQuery], tags=["quality"])
class MyStatsApi(OrganizationApi):
    """Your own stats, in total and per project, without gold figures, up to the start of today
    (UTC): a day joins them all at once when it is over (`until` is cut there, and is the
    default end). And `today`: your throughput since the start of today so far (submitted,
    claimed, handling time, per hour), which moves as you work."""

    roles = {"GET": ANNOTATOR}
    pagination_class = None

    @extend_schema(responses=OwnStatsOut)
    def get(self, request):
        annotator = annotator_of(self.member)
        now = timezone.now()
        latest = stats.own_until(now)
        query = validated(StatsQuery(data=request.query_params, context={"latest": latest}))
        found = stats.own_stats(annotator=annotator, now=now, **query)
        today = found["today"]
        return Response(_shown(found) | {"today": today | {"since": json_time(today["since"])}})


class ErrorTagCountOut(Prepared):
    code = serializers.CharField()
    description = serializers.CharField()
    count = serializers.IntegerField()


class ConfusionOut(Prepared):
    classes = serializers.ListField(child=serializers.CharField())
    confusion = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Labels counted by the consensus class (row) and the class given (column).",
    )


class AnnotatorErrorsOut(Prepared):
    error_tags = ErrorTagCountOut(many=True)
    confusion = ConfusionOut(
        allow_null=True, help_text="Categorical kinds: their labels against the consensus."
    )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class AnnotatorErrorsApi(OrganizationApi):
    """What goes wrong in an annotator's work in a project: how often reviewers gave each tag
    of the error taxonomy, and for a categorical kind their labels against each task's
    consensus."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=AnnotatorErrorsOut)
    def get(self, request, pk: int, annotator_id: int):
        project = project_get(member=self.member, project_id=pk)
        annotator = annotator_get(member=self.member, annotator_id=annotator_id)
        body = {
            "error_tags": selectors.annotator_error_tags(project=project, annotator=annotator),
            "confusion": annotator_confusion(project=project, annotator_id=annotator.pk),
        }
        return Response(body)


class GoldScoresQuery(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=GOLD_SCORES_MOST, default=GOLD_SCORES_SHOWN,
        help_text="How many of the latest scores.",
    )  # fmt: skip


class GoldScoreOut(Prepared):
    annotation = serializers.IntegerField()
    task = serializers.IntegerField()
    score = serializers.FloatField()
    answer_version = serializers.IntegerField(
        help_text="The version of the gold answer the score was made against."
    )
    scored_at = Rfc3339DateTimeField()


@extend_schema(parameters=[ORGANIZATION_PARAMETER, GoldScoresQuery], tags=["quality"])
class AnnotatorGoldScoresApi(OrganizationApi):
    """An annotator's latest gold scores in a project, newest first, each as it stands now (a
    gold answer changed rescores it): the trend and the results of the QA lead's drill-down.
    Staff only: an annotator never learns which of their tasks were gold."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=GoldScoreOut(many=True))
    def get(self, request, pk: int, annotator_id: int):
        project = project_get(member=self.member, project_id=pk)
        annotator = annotator_get(member=self.member, annotator_id=annotator_id)
        query = validated(GoldScoresQuery(data=request.query_params))
        scores = selectors.annotator_gold_scores(
            project=project, annotator=annotator, limit=query["limit"]
        )
        return Response(GoldScoreOut(scores, many=True).data)
