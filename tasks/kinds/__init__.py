"""The annotation kinds Assay knows, by key (DESIGN.md section 4).

Adding a kind is one new module with a `Kind` subclass and one line in `_KIND_CLASSES`.

    kind = get_kind(project.kind)
    kind.check_payload(payload, project.label_schema, task.data)   # raises PayloadInvalid
    score = kind.compare(submitted, gold_answer, project.label_schema).score
"""

from __future__ import annotations

from tasks.kinds.base import (
    DEFAULT_QUORUM,
    Comparison,
    ExportFormat,
    Kind,
    Merged,
    PayloadInvalid,
    UnknownExportFormat,
    ValidationIssue,
)
from tasks.kinds.bbox import BoundingBoxes
from tasks.kinds.classification import Classification
from tasks.kinds.entity_linking import EntityLinking
from tasks.kinds.keypoints import Keypoints
from tasks.kinds.multilabel import Multilabel
from tasks.kinds.ner import NamedEntities
from tasks.kinds.polygon import Polygons
from tasks.kinds.relations import Relations
from tasks.kinds.video_events import VideoEvents
from tasks.kinds.video_tracks import VideoTracks

__all__ = [
    "DEFAULT_QUORUM",
    "KINDS",
    "Comparison",
    "ExportFormat",
    "Kind",
    "Merged",
    "PayloadInvalid",
    "UnknownExportFormat",
    "UnknownKind",
    "ValidationIssue",
    "get_kind",
    "kind_choices",
]

_KIND_CLASSES: tuple[type[Kind], ...] = (
    Classification,
    Multilabel,
    BoundingBoxes,
    Polygons,
    Keypoints,
    NamedEntities,
    Relations,
    EntityLinking,
    VideoTracks,
    VideoEvents,
)

KINDS: dict[str, Kind] = {cls.key: cls() for cls in _KIND_CLASSES}


class UnknownKind(KeyError):
    """Raised for a kind key Assay does not know."""


def get_kind(key: str) -> Kind:
    """Return the kind registered under `key`; raise UnknownKind otherwise."""
    try:
        return KINDS[key]
    except KeyError:
        raise UnknownKind(key) from None


def kind_choices() -> list[tuple[str, str]]:
    """Return (key, title) pairs for model and serializer choices, in registry order."""
    return [(key, kind.title) for key, kind in KINDS.items()]
