import pytest

from tasks.kinds import KINDS, Kind, UnknownKind, get_kind, kind_choices

TEN_KINDS = {
    "classification",
    "multilabel",
    "bbox",
    "polygon",
    "keypoints",
    "ner",
    "relations",
    "entity_linking",
    "video_tracks",
    "video_events",
}


def test_the_registry_holds_exactly_the_ten_kinds():
    assert set(KINDS) == TEN_KINDS
    assert {key for key, _ in kind_choices()} == TEN_KINDS


def test_each_kind_is_registered_under_its_own_key():
    for key, kind in KINDS.items():
        assert isinstance(kind, Kind)
        assert kind.key == key
        assert get_kind(key) is kind


def test_an_unknown_kind_raises_a_key_error():
    with pytest.raises(UnknownKind):
        get_kind("cuboid")
    with pytest.raises(KeyError):
        get_kind("")


def test_every_kind_exports_jsonl():
    for kind in KINDS.values():
        assert "jsonl" in [f.name for f in kind.export_formats]


def test_kinds_do_not_depend_on_django():
    import subprocess
    import sys

    code = "import sys, tasks.kinds; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
