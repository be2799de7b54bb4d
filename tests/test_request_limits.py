"""The request body limit fits the kinds' limits, and a body over it is a 413 in the envelope.

``DATA_UPLOAD_MAX_MEMORY_SIZE`` (config/settings/base.py) is the most a body may carry outside
uploaded files. The largest payload of each kind is built here as an ordinary client writes it
(``json.dumps`` with its default spacing, full-precision coordinates, names and ids at their
length limit), checked valid by the kind, and must fit with room to spare. A body over the limit
is refused by ``config.middleware`` when its length is declared, and by ``config.parsers`` after
``limit + 1`` bytes when it is not: it is never read whole.
"""

import io
import json
import math
import socket
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core.handlers.wsgi import LimitedStream, WSGIHandler
from django.core.signals import request_started
from django.db import close_old_connections
from django.test import override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from rest_framework.authtoken.models import Token

from config.errors import PayloadTooLarge
from config.parsers import JSONParser
from tasks.kinds import get_kind
from tasks.kinds.validation import (
    MAX_ID_LENGTH,
    MAX_ITEMS,
    MAX_LABELS,
    MAX_NAME_LENGTH,
    MAX_POLYGON_POINTS,
    MAX_RELATIONS,
    MAX_TOTAL_KEYPOINTS,
    MAX_TOTAL_POLYGON_POINTS,
    MAX_TRACK_FRAMES,
)
from tasks.models import Annotation
from tests.helpers import asgi_server, import_rows, make_project, staff
from workforce.models import Role

LIMIT = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
# The limit must exceed the largest ordinary payload by this much: clients indent, or write
# coordinates with more digits than a double holds.
MARGIN = 1.25
WIDTH = HEIGHT = 4096
# A coordinate as a double prints at its longest: 17 significant digits.
COORD = 4095.1234567890123


def _circle(n: int, cx: float, cy: float, r: float) -> list[list[float]]:
    """A simple polygon of ``n`` points: coordinates with all the digits a double prints."""
    return [
        [cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]


def _name(i: int, length: int = MAX_NAME_LENGTH) -> str:
    return f"{i:06d}".ljust(length, "n")


def _largest() -> dict[str, tuple[dict, dict, dict]]:
    """Per kind: (label schema, task data, the largest valid payload)."""
    image = {"width": WIDTH, "height": HEIGHT}
    labels = {"labels": [{"name": _name(0)}]}
    label = _name(0)
    text = "x" * 100_000
    spans = [
        {"id": _name(i, MAX_ID_LENGTH), "start": i * 10, "end": i * 10 + 5, "label": label}
        for i in range(MAX_ITEMS)
    ]
    per_polygon = MAX_POLYGON_POINTS
    polygons = MAX_TOTAL_POLYGON_POINTS // per_polygon
    keypoint_names = MAX_TOTAL_KEYPOINTS // MAX_ITEMS
    video = {"frame_count": 10**6, **image}
    per_track = MAX_TRACK_FRAMES // MAX_ITEMS
    return {
        "classification": (labels, {}, {"label": label}),
        "multilabel": (
            {"labels": [{"name": _name(i)} for i in range(MAX_LABELS)]},
            {},
            {"labels": [_name(i) for i in range(MAX_LABELS)]},
        ),
        "bbox": (
            labels,
            image,
            {
                "boxes": [
                    {
                        "label": label,
                        "x": 1.5,
                        "y": 1.5,
                        "w": 1000.0000000000001,
                        "h": 1000.0000000000001,
                    }
                    for _ in range(MAX_ITEMS)
                ]
            },
        ),
        "polygon": (
            labels,
            image,
            {
                "polygons": [
                    {
                        "label": label,
                        "points": _circle(per_polygon, 2048.1, 2048.1, 2000.1),
                    }
                    for _ in range(polygons)
                ]
            },
        ),
        "keypoints": (
            {
                **labels,
                "keypoints": [_name(i) for i in range(keypoint_names)],
                "sigmas": [0.025] * keypoint_names,
            },
            image,
            {
                "instances": [
                    {"label": label, "keypoints": [[COORD, COORD, 2]] * keypoint_names}
                    for _ in range(MAX_ITEMS)
                ]
            },
        ),
        "ner": (
            labels,
            {"text": text},
            {"spans": [{k: s[k] for k in s if k != "id"} for s in spans]},
        ),
        "entity_linking": (
            {"labels": []},
            {"text": text},
            {"spans": [{"start": s["start"], "end": s["end"], "kb_id": s["id"]} for s in spans]},
        ),
        "relations": (
            {**labels, "relation_types": [_name(0)]},
            {"text": text},
            {
                "spans": spans,
                "relations": [
                    {
                        "from": spans[i % MAX_ITEMS]["id"],
                        "to": spans[(i // MAX_ITEMS + i + 1) % MAX_ITEMS]["id"],
                        "label": label,
                    }
                    for i in range(MAX_RELATIONS)
                ],
            },
        ),
        "video_tracks": (
            labels,
            video,
            {
                "tracks": [
                    {
                        "id": _name(t, MAX_ID_LENGTH),
                        "label": label,
                        "frames": [
                            {
                                "frame": 10**6 - per_track + f,
                                "x": 1.2345678901234567,
                                "y": 1.2345678901234567,
                                "w": COORD - 2,
                                "h": COORD - 2,
                            }
                            for f in range(per_track)
                        ],
                    }
                    for t in range(MAX_ITEMS)
                ]
            },
        ),
        "video_events": (
            labels,
            {"frame_count": 10**6},
            {
                "events": [
                    {"label": label, "start_frame": 10**6 - 2 - i, "end_frame": 10**6 - 1}
                    for i in range(MAX_ITEMS)
                ]
            },
        ),
    }


def test_the_body_limit_fits_the_largest_payload_of_every_kind():
    sizes = {}
    for key, (schema, data, payload) in _largest().items():
        kind = get_kind(key)
        assert not kind.validate_schema(schema), key
        issues = kind.validate_payload(payload, schema, data)
        assert not issues, (key, [str(i) for i in issues[:3]])
        sizes[key] = len(json.dumps({"payload": payload, "active_seconds": 10**6}).encode())
    largest = max(sizes, key=sizes.get)
    assert sizes[largest] * MARGIN <= LIMIT, (largest, sizes[largest], LIMIT)


@pytest.mark.django_db
def test_a_180000_point_polygon_is_accepted(org):
    """The adversarial pass's 3.45 MB payload, refused with an HTML 400 at 2.5 MB."""
    project = make_project(org, kind="polygon", schema={"labels": [{"name": "car"}]})
    import_rows(project, [{"external_id": "p", "data": {"width": 1920, "height": 1080}}])
    staff(project, org.annotator)
    client = org.client(Role.ANNOTATOR)
    claim = client.post("/api/v1/claims/", {}, format="json")
    payload = {"polygons": [{"label": "car", "points": _circle(10_000, 960, 540, 500)}] * 18}
    body = json.dumps({"payload": payload})
    assert len(body) > 2_621_440  # Django's default limit
    response = client.post(
        f"/api/v1/assignments/{claim.json()['id']}/submit/", body, content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]
    stored = Annotation.objects.get().payload["polygons"]
    assert sum(len(p["points"]) for p in stored) == 180_000


class CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes that counts what was read of it."""

    def __init__(self, size: int, chunk: bytes = b" "):
        self.size, self.read_bytes, self.chunk = size, 0, chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = (self.chunk * n)[:n]
        self.read_bytes += n
        return n


def _wsgi(path: str, stream, *, length: int | None, content_type: str, token: str):
    """Call the WSGI application as the web server does; return (status, headers, body)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "CONTENT_TYPE": content_type,
        "HTTP_AUTHORIZATION": f"Token {token}",
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    started = {}
    # As Django's test client does: the request must not close the test's connection.
    request_started.disconnect(close_old_connections)

    def start_response(status, headers, exc_info=None):
        started.update(status=int(status.split()[0]), headers=dict(headers))

    try:
        body = b"".join(WSGIHandler()(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
    return started["status"], started["headers"], body


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_declared_body_over_the_limit_is_refused_unread_on_every_api_path(org):
    token = Token.objects.create(user=org.manager.user).key
    paths = [
        "/api/v1/projects/",
        "/api/v1/domains/",
        "/api/v1/claims/",
        "/api/v1/nowhere/",
        "/api/v1/auth/token/",
        "/api/v1/projects/1/tasks/import/",
    ]
    for path in paths:
        for content_type in ("application/json", "application/x-www-form-urlencoded"):
            stream = CountingStream(10**9)
            status, _, body = _wsgi(
                path, stream, length=10**9, content_type=content_type, token=token
            )
            assert status == 413, (path, body[:300])
            error = json.loads(body)["error"]
            assert error["code"] == "payload_too_large" and "10000" in error["message"]
            assert stream.read_bytes == 0, path


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_body_of_undeclared_length_is_read_to_the_limit_and_no_further(org):
    """What DRF's parsers read is the stream, not ``request.body``: the parser bounds it."""
    token = Token.objects.create(user=org.manager.user).key
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        stream = CountingStream(10**9)
        # A server that passes on a chunked body gives a stream and no honest length; here
        # the length is declared within the limit while the stream holds a gigabyte.
        status, _, body = _wsgi(
            "/api/v1/projects/",
            stream,
            length=None,
            content_type=content_type,
            token=token,
        )
        assert status in (400, 413), body[:300]  # an empty body: nothing was read
        assert stream.read_bytes == 0
    # Read through the parser directly, the stream stops one byte past the limit.
    stream = CountingStream(10**9)
    with pytest.raises(PayloadTooLarge):
        JSONParser().parse(LimitedStream(stream, 10**9), parser_context={})
    assert stream.read_bytes <= 10_000 + 1 + 64 * 1024  # the limit, and one buffer at most


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_uploaded_files_do_not_count_but_form_fields_do(org):
    project = make_project(org, kind="classification", schema={"labels": [{"name": "a"}]})
    client = org.client(Role.MANAGER)
    rows = "".join(
        json.dumps({"external_id": f"r{i}", "data": {"t": "x" * 40}}) + "\n" for i in range(1_000)
    )
    assert len(rows) > 5 * 10_000
    upload = io.BytesIO(rows.encode())
    upload.name = "rows.jsonl"
    response = client.post(
        f"/api/v1/projects/{project.pk}/tasks/import/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.content[:300]
    assert response.json()["rows_read"] in (0, 1_000)
    # A form field over the limit is refused, in the envelope, by every multipart endpoint.
    big = {"slug": "s", "name": "n", "description": "d" * 20_000}
    for path in ("/api/v1/domains/", f"/api/v1/projects/{project.pk}/tasks/import/"):
        response = client.generic(
            "POST", path, encode_multipart(BOUNDARY, big), content_type=MULTIPART_CONTENT
        )
        assert response.status_code == 413, (path, response.content[:300])
        assert response.json()["error"]["code"] == "payload_too_large"
    response = client.generic(
        "POST", "/api/v1/domains/", urlencode(big), "application/x-www-form-urlencoded"
    )
    assert response.status_code == 413


@pytest.mark.django_db(transaction=True)
def test_the_asgi_server_refuses_a_declared_body_over_the_limit_before_receiving_it():
    """Django's ASGI handler spools a whole body to disk before any middleware runs."""
    with asgi_server() as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(body)["error"]["code"] == "payload_too_large"
