"""The kinds in the OpenAPI schema: label schemas, payloads and export formats, typed per kind.

Each kind's shapes (``Kind.label_schema_shape``, ``Kind.payload_shape``, declared beside its
validation) become components named after it: ``BboxLabelSchema``, ``BboxPayload``. A field
whose kind the request states is one of them by that kind; elsewhere it is any of them:

- ``POST /projects/`` is a ``oneOf`` discriminated by ``kind``, each with its label schema.
- ``PayloadField`` and ``LabelSchemaField`` are ``anyOf`` every kind's shape. Not ``oneOf``:
  several kinds share a shape (most label schemas are ``{labels, error_tags}``, and
  ``{"spans": []}`` is both a valid ``ner`` and ``entity_linking`` payload), and ``oneOf``
  refuses a value that more than one alternative accepts.
"""

import copy

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from tasks.kinds import KINDS, Kind

_PARTS = {"label_schema": "LabelSchema", "payload": "Payload"}


class PayloadField(serializers.JSONField):
    """An annotation payload: its shape is its project's kind's (``Kind.payload_shape``)."""


class LabelSchemaField(serializers.JSONField):
    """A project's label schema: its shape is its kind's (``Kind.label_schema_shape``)."""


def _component_name(kind: Kind, part: str) -> str:
    return "".join(word.capitalize() for word in kind.key.split("_")) + _PARTS[part]


def kind_ref(auto_schema, kind: Kind, part: str) -> dict:
    """Register the kind's shape for ``part`` as a component once; return a reference to it."""
    shape = kind.label_schema_shape if part == "label_schema" else kind.payload_shape
    what = "Label schema" if part == "label_schema" else "Annotation payload"
    schema = {**shape, "description": f"{what} of kind `{kind.key}` ({kind.title})."}
    if "description" in shape:
        schema["description"] += " " + shape["description"]
    component = ResolvedComponent(
        name=_component_name(kind, part),
        type=ResolvedComponent.SCHEMA,
        object=f"{kind.key}.{part}",
        schema=schema,
    )
    auto_schema.registry.register_on_missing(component)
    return component.ref


def any_kind(auto_schema, part: str) -> dict:
    return {"anyOf": [kind_ref(auto_schema, kind, part) for kind in KINDS.values()]}


class PayloadFieldExtension(OpenApiSerializerFieldExtension):
    target_class = PayloadField

    def map_serializer_field(self, auto_schema, direction):
        return {**any_kind(auto_schema, "payload"), "description": "The kind's payload."}


class LabelSchemaFieldExtension(OpenApiSerializerFieldExtension):
    target_class = LabelSchemaField

    def map_serializer_field(self, auto_schema, direction):
        return {**any_kind(auto_schema, "label_schema"), "description": "The kind's label schema."}


class ProjectCreateExtension(OpenApiSerializerExtension):
    """A new project's fields, one alternative per kind, told apart by ``kind``."""

    target_class = "tasks.api.projects.ProjectFields"

    def map_serializer(self, auto_schema, direction):
        fields = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        name = auto_schema._get_serializer_name(self.target, direction)
        mapping = {}
        for kind in KINDS.values():
            variant = copy.deepcopy(fields)
            variant["properties"]["kind"] = {"type": "string", "enum": [kind.key]}
            variant["properties"]["label_schema"] = kind_ref(auto_schema, kind, "label_schema")
            variant["required"] = sorted({*variant.get("required", ()), "kind"})
            component = ResolvedComponent(
                name=_component_name(kind, "label_schema").removesuffix("LabelSchema") + name,
                type=ResolvedComponent.SCHEMA,
                object=f"{kind.key}.{name}",
                schema=variant,
            )
            auto_schema.registry.register_on_missing(component)
            mapping[kind.key] = component.ref["$ref"]
        return {
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "kind", "mapping": mapping},
            # What every alternative requires; it also tells the body is required.
            "required": variant["required"],
        }


def _export_formats() -> dict[str, str]:
    """Every export format a kind offers, with its media type."""
    return {f.name: f.media_type for kind in KINDS.values() for f in kind.export_formats}


EXPORT_FORMAT_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=sorted(_export_formats()),
    default="jsonl",
    description="One of the project's kind's formats: "
    + "; ".join(
        f"`{kind.key}`: {', '.join(f.name for f in kind.export_formats)}" for kind in KINDS.values()
    )
    + ".",
)
# The export's answers, by media type: the body is the file (a JSON document for COCO).
EXPORT_RESPONSES = {
    (200, media_type): OpenApiTypes.OBJECT
    if media_type == "application/json"
    else OpenApiTypes.BINARY
    for media_type in sorted(set(_export_formats().values()))
}
