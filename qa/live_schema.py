"""The JSON Schema of every message a live-events socket sends (``qa/live.py`` tells them).

One document (draft 2020-12), served at ``GET /api/schema/live/``; the tests check every
message they receive against it (``tests/qa/live_helpers.py``). Each event type's ``data`` is
a definition of its own, named by the type.
"""

from workforce.models import Role

from .live import BATCH, RESYNC, SNAPSHOT
from .models import AnnotatorHourStats, LiveEventType
from .models.stats import HANDLING_BUCKETS
from .stats import COUNTERS, OWN_LIVE_FIELDS

_ID = {"type": "integer", "minimum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
# In UTC, ending in Z, as every API answer writes a time (config.serializers.json_time).
_TIME = {"type": "string", "format": "date-time", "pattern": "Z$"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict, *, description: str | None = None) -> dict:
    """An object with exactly these keys."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return schema | ({"description": description} if description else {})


_FRACTION = _nullable({"type": "number", "minimum": 0, "maximum": 1})

# What ``data`` holds in each event.
EVENT_DATA: dict[str, dict] = {
    LiveEventType.ASSIGNMENT_CLAIMED: _object(
        {"assignment": _ID, "project": _ID, "task": _ID, "annotator": _ID},
        description="A claim leased a task (qa/live.sql).",
    ),
    LiveEventType.ANNOTATION_SUBMITTED: _object(
        {
            "annotation": _ID,
            "project": _ID,
            "task": _ID,
            "annotator": _ID,
            "duration_seconds": _nullable(_NUMBER),
        },
        description="An annotator submitted work.",
    ),
    LiveEventType.GOLD_SCORED: _object(
        {"annotation": _ID, "project": _ID, "task": _ID, "annotator": _ID, "score": _NUMBER},
        description="Staff only: a gold submission's score (qa.gold).",
    ),
    LiveEventType.QUALITY_ALERT: _object(
        {
            "action": _ID,
            "rule": _ID,
            "annotator": _ID,
            "project": _nullable(_ID),
            "metric": _STRING,
            "value": _NUMBER,
            "threshold": _NUMBER,
            "effect": _STRING,
        },
        description="Staff only: a quality rule acted (qa.rules): what, on whom, and the "
        "figure that crossed.",
    ),
    LiveEventType.REVIEW_COMPLETED: _object(
        {
            "review": _ID,
            "item": _ID,
            "annotation": _ID,
            "version": _ID,
            "project": _ID,
            "task": _ID,
            "annotator": _ID,
            "layer": _ID,
            "reviewer": _ID,
            "verdict": _STRING,
            "score": _NUMBER,
        },
        description="Staff only: a reviewer's verdict and the score it gave (qa.verdicts).",
    ),
    LiveEventType.IMPORT_PROGRESSED: _object(
        {
            "import": _ID,
            "project": _ID,
            "status": _STRING,
            "rows_read": _COUNT,
            "created": _nullable(_COUNT),
            "invalid": _nullable(_COUNT),
        },
        description="Staff only: how far an import has come.",
    ),
    LiveEventType.STATS_UPDATED: {
        "oneOf": [{"$ref": "#/$defs/stats"}, {"$ref": "#/$defs/own_stats"}],
        "description": "An annotator's row of the hour in a project: `stats` on staff's "
        "sockets, `own_stats` on the annotator's own (the keys tell them apart).",
    },
}


def _event(event_type: str) -> dict:
    properties = {"type": {"const": event_type}, "at": _TIME, "id": _ID}
    if event_type == LiveEventType.STATS_UPDATED:
        del properties["id"]  # made by the relay, not read from the outbox
    return _object(properties | {"data": {"$ref": f"#/$defs/{event_type}"}})


def _message(message_type: str, data: dict, *, description: str) -> dict:
    return _object(
        {"seq": _ID, "type": {"const": message_type}, "at": _TIME, "data": data},
        description=description,
    )


_LEADERBOARD_ROW = _object(
    {
        "annotator": _ID,
        "username": _STRING,
        "scored": _COUNT,
        "mean": _FRACTION,
        "low": _FRACTION,
        "high": _FRACTION,
        "recent_mean": _FRACTION,
        "recent_n": _COUNT,
        "review": _object(
            {"reviewed": _COUNT, "mean": _FRACTION, "low": _FRACTION, "high": _FRACTION}
        ),
    },
    description="A row of GET /api/v1/projects/{id}/accuracy.",
)

# An annotator's figures of one hour in one project, as ``qa.stats.hour_rows`` gives them:
# staff's, and the annotator's own, which is throughput alone (``qa.own_view``).
_STATS_FIELDS = {
    "project": _ID,
    "annotator": _ID,
    "hour": _TIME,
    **{
        name: _COUNT if field.get_internal_type().endswith("IntegerField") else _NUMBER
        for name in COUNTERS
        for field in [AnnotatorHourStats._meta.get_field(name)]
    },
    "handling_buckets": {
        "type": "array",
        "items": _COUNT,
        "minItems": HANDLING_BUCKETS,
        "maxItems": HANDLING_BUCKETS,
    },
    "throughput_per_hour": _nullable(_NUMBER),
    "handling_median_seconds": _nullable(_NUMBER),
    "handling_p90_seconds": _nullable(_NUMBER),
    "gold_accuracy": _FRACTION,
    "review_pass_rate": _FRACTION,
    "review_mean_score": _FRACTION,
    "agreement_mean": _FRACTION,
}
STATS = _object(_STATS_FIELDS, description="Staff's: every counter and figure.")
OWN_STATS = _object(
    {name: _STATS_FIELDS[name] for name in ("project", "annotator", "hour", *OWN_LIVE_FIELDS)},
    description="The annotator's own, on their socket: throughput alone "
    "(qa.stats.OWN_LIVE_FIELDS), nothing of gold, reviews or agreement.",
)

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Assay live message",
    "description": "Every message a live-events WebSocket (/ws/orgs/<slug>/) sends.",
    "oneOf": [{"$ref": f"#/$defs/{name}"} for name in (SNAPSHOT, BATCH, RESYNC)],
    "$defs": {
        SNAPSHOT: _message(
            SNAPSHOT,
            _object(
                {
                    "organization": _STRING,
                    "role": {"enum": list(Role.values)},
                    "member": _ID,
                    "cursor": _COUNT,
                    "project": _nullable(_ID),
                    "leaderboard": _nullable({"type": "array", "items": _LEADERBOARD_ROW}),
                    "stats": {
                        "type": "array",
                        "items": {"$ref": f"#/$defs/{LiveEventType.STATS_UPDATED}"},
                    },
                }
            ),
            description="First, and when the socket's role changes: what the page shows now.",
        ),
        BATCH: _message(
            BATCH,
            _object(
                {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"oneOf": [{"$ref": f"#/$defs/event:{t}"} for t in EVENT_DATA]},
                    }
                }
            ),
            description="Every event for the socket since its previous message.",
        ),
        RESYNC: _message(
            RESYNC,
            _object({"reason": {"enum": ["cursor_expired", "too_far_behind", "too_slow"]}}),
            description="Fetch the snapshot again (reconnect).",
        ),
        **{f"event:{t}": _event(t) for t in EVENT_DATA},
        **EVENT_DATA,
        "stats": STATS,
        "own_stats": OWN_STATS,
    },
}
