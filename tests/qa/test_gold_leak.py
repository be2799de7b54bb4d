"""Invariant 2, the leak scan: nothing an annotator receives tells a gold task apart.

An annotator claims, heartbeats, releases and submits gold and regular tasks; then every
operation of the OpenAPI schema is called as that annotator (reads first, writes after, so
that a write spoils no read), with the ids of gold objects and of their regular twins in the
same state, and of objects that are not theirs or do not exist. Every body and header they get
back is scanned for gold markers: the word, the answer's coordinates, the gold task's external
id, any score. A gold object must also answer exactly as its regular twin does (status, headers,
keys and value types, error codes and messages). The live socket gets the same scan, and must
not carry ``gold.scored``, which a staff socket does receive.
"""

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from qa.models import Accuracy, GoldScore
from qa.stats import GOLD_FIELDS, OWN_LIVE_FIELDS
from tasks.models import Annotation, Assignment, Task
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import Org, image_rows, import_rows, make_project, session_headers, staff
from tests.qa.live_helpers import open_socket, receive_events
from workforce.models import Annotator, Role
from workforce.services import certification_issue, domain_create

METHODS = ("get", "post", "put", "patch", "delete")
# What staff see of a submission (its claim aside).
WORK = {"annotation.submitted", "gold.scored"}
MISSING = 987_654_321

# The gold answer's coordinates and the gold tasks' external ids are found nowhere else: none
# of them is in a task's data, the label schema, or a payload an annotator submits.
GOLD_ANSWER = {
    "boxes": [
        {"label": "person", "x": 123.4375, "y": 222.75, "w": 31.0625, "h": 47.8125},
        {"label": "car", "x": 401.5625, "y": 301.1875, "w": 57.3125, "h": 29.6875},
    ]
}
GOLD_EXTERNAL_ID = "GOLD-marker-7f3a"
# What the annotator submits, on gold and regular tasks alike: one box close to the answer's
# first (it matches), four far from both (they do not): an F1 of 2/7, a score no timestamp or
# id spells.
PAYLOAD = {
    "boxes": [
        {"label": "person", "x": 124, "y": 223, "w": 31, "h": 48},
        {"label": "car", "x": 10, "y": 12, "w": 20, "h": 24},
        {"label": "car", "x": 60, "y": 12, "w": 20, "h": 24},
        {"label": "person", "x": 10, "y": 80, "w": 20, "h": 24},
        {"label": "person", "x": 60, "y": 80, "w": 20, "h": 24},
    ]
}
# Out of the image: an error that names the field, for gold and regular alike.
BAD_PAYLOAD = {"boxes": [{"label": "car", "x": 650, "y": 0, "w": 5, "h": 5}]}

MARKERS = (
    "gold",
    "222.75",
    "123.4375",
    "31.0625",
    "47.8125",
    "401.5625",
    "301.1875",
    "57.3125",
    "29.6875",
    "marker-7f3a",
    "score",
    "accuracy",
)
# ``me/accuracy`` is the annotator's own aggregate accuracy, ``me/stats`` their own hourly
# stats (with their review scores): their words may say so. What they must not do is move when
# one task is scored (``test_own_figures_do_not_move_...``).
AGGREGATE_WORDS = {"score", "accuracy"}
OWN_AGGREGATES = {"/api/v1/me/accuracy/", "/api/v1/me/stats/"}


def markers_in(text: str, *, extra: tuple[str, ...] = (), allow: set[str] = frozenset()) -> list:
    lowered = text.lower()
    return [m for m in (*MARKERS, *extra) if m.lower() not in allow and m.lower() in lowered]


def shape(value):
    """Keys and value types, recursively; a list is the set of its elements' shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes = {json.dumps(shape(item), sort_keys=True) for item in value}
        return ["list", *sorted(shapes)]
    return type(value).__name__


def body_of(response):
    """The body as JSON, or as text (an export streams it)."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode(errors="replace")


def claim(client: APIClient) -> dict:
    response = client.post("/api/v1/claims/", {}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


class World:
    """An organization whose annotator did every kind of work on gold and regular tasks.

    ``pairs`` maps a resource to (gold id, regular id) twins in the same state; ``records``
    holds what the annotator received while doing the work, per kind of answer.
    """

    def __init__(self, org: Org):
        self.org = org
        # Room for six leases at once, and the walk's own claim.
        self.project = make_project(
            org, name="Streets", instructions="Box cars.", gold_rate=1.0, max_concurrent_tasks=10
        )
        Annotator.objects.filter(pk=org.annotator.pk).update(max_concurrent_tasks=10)
        rows = image_rows(8)
        for i, row in enumerate(rows[:3]):
            row["external_id"] = f"{GOLD_EXTERNAL_ID}-{i}"
            row["gold_answer"] = GOLD_ANSWER
        import_rows(self.project, rows)
        self.other = org.add_annotator("acme-other")
        staff(self.project, org.annotator, self.other)
        self.domain = domain_create(
            organization=org.organization,
            slug="street-scenes",
            name="Street scenes",
            description="",
            actor=org.manager.user,
        )
        self.certification = certification_issue(
            annotator=org.annotator,
            domain=self.domain,
            issued_by=org.qa_lead.user,
            evidence="Seen at work.",
            expires_at=None,
        )
        self.client = org.client(Role.ANNOTATOR)
        self.records: dict[str, dict[bool, list]] = {}
        self.own_before = {path: self.get(path).json() for path in sorted(OWN_AGGREGATES)}

        # Gold comes first while it lasts (rate 1.0): three gold claims, then regular ones.
        claims = [claim(self.client) for _ in range(6)]
        gold = {c["task"]["id"] for c in claims if Task.objects.get(pk=c["task"]["id"]).is_gold}
        assert len(gold) == 3, "the first three claims are the gold tasks"
        gold_claims = [c for c in claims if c["task"]["id"] in gold]
        regular_claims = [c for c in claims if c["task"]["id"] not in gold]
        for is_gold, group in ((True, gold_claims), (False, regular_claims)):
            submitted, held, released = (c["id"] for c in group)
            self.record("claim", is_gold, group[0])
            self.record("assignment", is_gold, self.get(f"/api/v1/assignments/{held}/").json())
            self.record("heartbeat", is_gold, self.post(f"/api/v1/assignments/{held}/heartbeat"))
            self.record(
                "heartbeat", is_gold, self.post(f"/api/v1/assignments/{submitted}/heartbeat")
            )
            self.record("release", is_gold, self.post(f"/api/v1/assignments/{released}/release"))
            url = f"/api/v1/assignments/{submitted}/submit"
            self.record("bad submit", is_gold, self.post(url, {"payload": BAD_PAYLOAD}))
            self.record(
                "submit", is_gold, self.post(url, {"payload": PAYLOAD, "active_seconds": 3})
            )
            # Today's throughput moves with the submission, gold or not, and alike.
            self.record("own today", is_gold, self.get("/api/v1/me/stats/").json()["today"])
            self.record("submit again", is_gold, self.post(url, {"payload": PAYLOAD}))
            self.record("other payload", is_gold, self.post(url, {"payload": {"boxes": []}}))
            self.record("release", is_gold, self.post(f"/api/v1/assignments/{submitted}/release"))
            task = Assignment.objects.get(pk=submitted).task_id
            annotation = self.get(f"/api/v1/annotations/?task={task}").json()["results"]
            self.record("annotation", is_gold, annotation)
            self.record("assignment", is_gold, self.get(f"/api/v1/assignments/{submitted}/").json())
            self.record("assignment", is_gold, self.get(f"/api/v1/assignments/{released}/").json())
        gold_ids = [c["id"] for c in gold_claims]
        regular_ids = [c["id"] for c in regular_claims]
        assignments = Assignment.objects.in_bulk(gold_ids + regular_ids)
        self.pairs = {
            "assignments": list(zip(gold_ids, regular_ids, strict=True)),
            "tasks": [
                (assignments[g].task_id, assignments[r].task_id)
                for g, r in zip(gold_ids, regular_ids, strict=True)
            ],
            "annotations": [
                (
                    Annotation.objects.get(assignment_id=gold_ids[0]).pk,
                    Annotation.objects.get(assignment_id=regular_ids[0]).pk,
                )
            ],
        }
        # Someone else's gold work, which the annotator may not see at all.
        other = claim_next(annotator=self.other).claimed
        other_assignment = Assignment.objects.get(pk=other.assignment_id)
        assert other_assignment.task.is_gold
        other_annotation = assignment_submit(assignment=other_assignment, payload=PAYLOAD)[0]
        self.others = {
            "assignments": [other_assignment.pk, MISSING],
            "tasks": [MISSING],
            "annotations": [other_annotation.pk, MISSING],
        }
        score = GoldScore.objects.filter(annotator=org.annotator).get().score
        assert score == pytest.approx(2 / 7), "the scorer gives the submission a telling fraction"
        # The annotator's score on their one gold item is a marker, in full or to seven places
        # (a timestamp's microseconds have six).
        self.score_markers = (repr(score), f"{score:.7f}")
        assert Accuracy.objects.filter(annotator=org.annotator, scored=1).exists()

    def get(self, url: str):
        return self.client.get(url)

    def post(self, url: str, body: dict | None = None):
        return self.client.post(url, body or {}, format="json")

    def record(self, what: str, is_gold: bool, answer) -> None:
        self.records.setdefault(what, {True: [], False: []})[is_gold].append(answer)

    def leaks(self, text: str, *, allow: set[str] = frozenset()) -> list:
        return markers_in(text, extra=self.score_markers, allow=allow)


@pytest.fixture
def world(org) -> World:
    return World(org)


def answer_of(response) -> dict:
    """What the annotator receives: status, headers and body."""
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": body_of(response),
    }


def test_the_work_of_a_gold_task_answers_exactly_as_regular_work(world):
    """Claim, assignment, heartbeat, release, submit, annotation and their errors: the same."""
    assert set(world.records) >= {"claim", "assignment", "annotation", "submit", "release"}
    # The lease a gold claim gives is as long as a regular one's.
    leases = [
        datetime.fromisoformat(c["lease_expires_at"]) - datetime.fromisoformat(c["leased_at"])
        for c in (world.records["claim"][True][0], world.records["claim"][False][0])
    ]
    assert abs(leases[0] - leases[1]) < timedelta(seconds=1), leases
    for what, sides in world.records.items():
        gold, regular = sides[True], sides[False]
        assert len(gold) == len(regular), what
        for gold_answer, regular_answer in zip(gold, regular, strict=True):
            if hasattr(gold_answer, "status_code"):
                gold_answer, regular_answer = answer_of(gold_answer), answer_of(regular_answer)
                assert gold_answer["status"] == regular_answer["status"], what
                assert set(gold_answer["headers"]) == set(regular_answer["headers"]), what
                gold_answer, regular_answer = gold_answer["body"], regular_answer["body"]
                if isinstance(gold_answer, dict) and "error" in gold_answer:
                    # An error tells the same thing, word for word.
                    assert gold_answer == regular_answer, what
            assert shape(gold_answer) == shape(regular_answer), what
            for answer in (gold_answer, regular_answer):
                text = json.dumps(answer)
                assert not world.leaks(text), (what, world.leaks(text), text)


def operations(schema: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def calls(world: World, path: str) -> Iterator[tuple[str, str | None, str, object]]:
    """Each URL to call for a schema path: (twin key, side, url, the id that varies).

    Requests with a gold id and with its regular twin share a twin key and differ only in it;
    the rest fill ids with objects of the annotator, of others, and none at all.
    """
    org = world.org
    own = {
        "annotators": [org.annotator.pk, world.other.pk, MISSING],
        "members": [org.annotator_member.pk, world.other.member.pk, org.manager.pk, MISSING],
        "projects": [world.project.pk, MISSING],
        "certifications": [world.certification.pk, MISSING],
        "domains": [world.domain.pk, MISSING],
        "invitations": [MISSING],
        "imports": [MISSING],
    }
    names = re.findall(r"\{(\w+)\}", path)
    if not names:
        yield path, None, path, None
        return
    # The resource each id names is the path segment before it.
    resources = {name: re.search(r"([\w-]+)/\{" + name + r"\}", path).group(1) for name in names}
    resources = {
        name: {"task_id": "tasks", "import_id": "imports", "annotator_id": "annotators"}.get(
            name, resource
        )
        for name, resource in resources.items()
    }

    def fill(values: dict) -> str:
        url = path
        for name, value in values.items():
            url = url.replace("{" + name + "}", str(value))
        return url

    first = {}
    for name, resource in resources.items():
        if name == "skill":
            first[name] = "bbox"
        elif resource in world.pairs:
            first[name] = world.pairs[resource][0][0]
        else:
            # A resource this walk builds nothing of (a newer one): ids that may or may not be.
            first[name] = own.setdefault(resource, [1, MISSING])[0]
    for name, resource in resources.items():
        if name == "skill":
            continue
        for index, (gold, regular) in enumerate(world.pairs.get(resource, [])):
            key = f"{path} {name}#{index}"
            yield key, "gold", fill(first | {name: gold}), gold
            yield key, "regular", fill(first | {name: regular}), regular
        for value in world.others.get(resource, own.get(resource, [])):
            yield path, None, fill(first | {name: value}), value


# Bodies a write is called with: empty, and for a submission a bad and a well-formed payload.
BODIES = {
    "submit": [{}, {"payload": BAD_PAYLOAD}, {"payload": {"boxes": []}}, {"payload": PAYLOAD}],
}


def test_no_operation_of_the_api_tells_an_annotator_anything_of_gold(world):
    """Every operation of the schema, as the annotator: no marker, and gold answers as regular."""
    client = world.client
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    ops = sorted(
        operations(schema),
        # Reads first, then writes, deletions last: no write spoils a read's fixture.
        key=lambda op: (0 if op[1] == "get" else 2 if op[1] == "delete" else 1, op[0]),
    )
    assert len(ops) >= 40
    found, mismatched, answered, readable = [], [], 0, []
    for path, method, operation in ops:
        twins: dict[str, dict[str, dict]] = {}
        for key, side, url, varying in calls(world, path):
            bodies = (
                [None] if method == "get" else BODIES.get(url.rstrip("/").rsplit("/")[-1], [{}])
            )
            for index, body in enumerate(bodies):
                if method == "get":
                    response = client.get(url)
                else:
                    response = getattr(client, method)(url, body, format="json")
                answered += 1
                answer = answer_of(response)
                allow = AGGREGATE_WORDS if path in OWN_AGGREGATES else set()
                text = json.dumps(answer["body"]) + json.dumps(answer["headers"])
                if leaks := world.leaks(text, allow=allow):
                    found.append((method.upper(), url, answer["status"], leaks, text[:400]))
                if side is not None:
                    twins.setdefault(f"{key} body#{index}", {})[side] = answer | {"id": varying}
                if method == "get" and answer["status"] == 200:
                    readable.append((path, url, operation))
        for key, sides in twins.items():
            gold, regular = sides["gold"], sides["regular"]
            same = (
                gold["status"] == regular["status"]
                and set(gold["headers"]) == set(regular["headers"])
                and shape(gold["body"]) == shape(regular["body"])
            )
            errors = [
                s["body"]["error"]
                for s in (gold, regular)
                if isinstance(s["body"], dict) and "error" in s["body"]
            ]
            if len(errors) == 2:
                # Word for word, but for the ids themselves.
                words = [
                    re.sub(rf"\b{s['id']}\b", "<id>", json.dumps(e, sort_keys=True))
                    for s, e in zip((gold, regular), errors, strict=True)
                ]
                same = same and words[0] == words[1]
            if not same:
                mismatched.append(
                    (method.upper(), key, gold["status"], regular["status"], gold, regular)
                )
    assert answered > 150
    assert not found, "\n".join(map(str, found))
    assert not mismatched, "\n".join(map(str, mismatched))
    # An annotator can read some operations; none of them takes a filter on gold, and a gold
    # filter they guess is ignored.
    assert readable
    for path, url, operation in readable:
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        assert not [n for n in names if "gold" in n.lower()], (path, names)
        if "{" in path:
            continue
        plain = client.get(url)
        for query in ("gold=true", "gold=false", "is_gold=true", "is_gold=1"):
            guessed = client.get(f"{url}?{query}")
            assert (guessed.status_code, guessed.content) == (plain.status_code, plain.content), (
                url,
                query,
            )


def test_own_figures_do_not_move_when_one_gold_task_is_scored(world):
    """The annotator's own accuracy and stats count up to the end of the last day: what they
    read after submitting a gold task today is what they read before it. But today's
    throughput, which the gold submission moved as the regular one did: one each."""
    after = {path: world.get(path).json() for path in sorted(OWN_AGGREGATES)}
    before_today, after_today = (
        found["/api/v1/me/stats/"].pop("today")["total"] for found in (world.own_before, after)
    )
    assert after == world.own_before, (world.own_before, after)
    # Before, after the gold submission, after the regular one (``World``), and now.
    moved = [world.records["own today"][is_gold][0]["total"] for is_gold in (True, False)]
    assert [t["submitted"] for t in (before_today, *moved, after_today)] == [0, 1, 2, 2]
    assert set(moved[0]) == set(moved[1]) == {*OWN_LIVE_FIELDS, "hours_worked"}


def claim_and_submit(annotator, *, gold: bool) -> Annotation:
    claimed = claim_next(annotator=annotator).claimed
    assignment = Assignment.objects.select_related("task").get(pk=claimed.assignment_id)
    assert assignment.task.is_gold is gold
    return assignment_submit(assignment=assignment, payload=PAYLOAD)[0]


@pytest.mark.django_db(transaction=True)
def test_the_annotator_socket_carries_nothing_of_gold(org):
    """What the annotator's socket receives while they submit a gold and a regular task: two
    ``assignment.claimed``, two ``annotation.submitted`` and their own ``stats.updated`` after
    each, alike; no ``gold.scored``, and nothing of gold in their stats (which staff's carry)."""
    project = make_project(org, gold_rate=1.0)
    rows = image_rows(3)
    rows[0] |= {"external_id": GOLD_EXTERNAL_ID, "gold_answer": GOLD_ANSWER}
    import_rows(project, rows)
    staff(project, org.annotator)
    lead, author = (session_headers(user) for user in (org.qa_lead.user, org.annotator_member.user))

    async def scenario():
        lead_socket, _ = await open_socket(lead)
        author_socket, snapshot = await open_socket(author)
        gold = await database_sync_to_async(claim_and_submit)(org.annotator, gold=True)
        staff_seen = await receive_events(lead_socket, 2, types=WORK)
        # The regular submission comes after the gold one's score in the outbox: had the
        # score reached the annotator, it would come before it.
        regular = await database_sync_to_async(claim_and_submit)(org.annotator, gold=False)
        staff_seen += await receive_events(lead_socket, 1, types=WORK)
        # Staff's stats that count both submissions (the second waits for the end of the
        # first's second): a stats.updated for the annotator would have gone out by then.
        stats = []
        while not stats or stats[-1]["data"]["submitted"] < 2:
            stats += await receive_events(lead_socket, 1, types={"stats.updated"})
        seen = [snapshot]
        while len(seen) < 7 or seen[-1]["data"].get("submitted", 0) < 2:
            seen += await receive_events(author_socket, 1)
        assert await author_socket.receive_nothing(timeout=0.5)
        for communicator in (lead_socket, author_socket):
            await communicator.disconnect()
        return gold, regular, staff_seen, seen, stats

    gold, regular, staff_seen, seen, stats = async_to_sync(scenario)()
    score = GoldScore.objects.get(annotation=gold).score
    # The event exists: staff receive the gold submission's score.
    assert [m["type"] for m in staff_seen] == [
        "annotation.submitted",
        "gold.scored",
        "annotation.submitted",
    ]
    assert staff_seen[1]["data"]["annotation"] == gold.pk
    # Staff's stats count the gold; the annotator's own count their submissions alone, their
    # other figures being theirs up to the start of today.
    assert stats[0]["data"]["gold_scored"] == 1 and set(stats[0]["data"]) >= GOLD_FIELDS
    assert [m["type"] for m in seen] == [
        "snapshot",
        *["assignment.claimed", "annotation.submitted", "stats.updated"] * 2,
    ]
    gold_stats, regular_stats = seen[3]["data"], seen[6]["data"]
    assert (gold_stats["submitted"], regular_stats["submitted"]) == (1, 2)
    assert set(gold_stats) == set(regular_stats) == {"project", "annotator", "hour",
                                                     *OWN_LIVE_FIELDS}  # fmt: skip
    assert shape(seen[3]) == shape(seen[6])
    gold_message, regular_message = seen[2], seen[5]
    assert (gold_message["data"]["annotation"], regular_message["data"]["annotation"]) == (
        gold.pk,
        regular.pk,
    )
    assert shape(gold_message) == shape(regular_message)
    assert shape(seen[1]) == shape(seen[4])  # the claims'
    assert seen[1]["data"]["task"] == gold.task_id
    for message in seen:
        text = json.dumps(message)
        assert not markers_in(text, extra=(repr(score), f"{score:.7f}")), text
