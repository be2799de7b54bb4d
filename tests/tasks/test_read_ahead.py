"""Reading rows ahead of the writes: order, errors where they happen, and no reader left behind."""

import threading

import pytest

from tasks.task_files import read_ahead
from tests.helpers import wait_for


def test_yields_every_item_in_order_across_chunks():
    assert list(read_ahead(iter(range(1003)), chunk=10)) == list(range(1003))
    assert list(read_ahead(iter([]), chunk=10)) == []


def test_an_error_while_reading_is_raised_after_the_items_before_it():
    def items():
        yield from range(25)
        raise ValueError("row 26 is broken")

    seen = []
    with pytest.raises(ValueError, match="row 26"):
        for item in read_ahead(items(), chunk=10):
            seen.append(item)
    assert seen == list(range(20))  # the last chunk never completed


def test_reads_at_most_depth_chunks_ahead():
    produced = []
    overran = threading.Event()

    def items():
        for i in range(1000):
            produced.append(i)
            # One chunk handed over, two waiting in the queue, and one being filled.
            if len(produced) > 10 * 4:
                overran.set()
            yield i

    reader = read_ahead(items(), chunk=10, depth=2)
    assert next(reader) == 0
    # The reader does read ahead: the two chunks the queue holds are filled...
    wait_for(lambda: len(produced) >= 10 * 3, timeout=10, what="the reader to fill the queue")
    # ...and it then stops at the bound instead of reading on.
    assert not overran.wait(0.3), len(produced)
    # Taking the rest of the first chunk and the next lets it read on.
    assert [next(reader) for _ in range(19)] == list(range(1, 20))
    wait_for(lambda: len(produced) >= 10 * 5, timeout=10, what="the reader to go on")
    reader.close()


def test_a_caller_that_stops_early_stops_the_reader():
    before = {t.ident for t in threading.enumerate()}

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    reader = read_ahead(endless(), chunk=5)
    assert [next(reader) for _ in range(7)] == list(range(7))
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert [t.name for t in started] == ["read-ahead"]
    reader.close()
    assert not [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]


def test_a_chunk_ends_at_its_weight_as_well_as_its_count():
    handed = []

    def items():
        for i in range(12):
            handed.append(i)
            yield i

    reader = read_ahead(items(), chunk=100, depth=1, weight=lambda item: 10, max_weight=30)
    assert next(reader) == 0
    # One chunk of 3 items handed over, one waiting, one being filled: never the 100 a count
    # alone would allow.
    wait_for(lambda: len(handed) >= 7, timeout=10, what="the reader to fill the queue")
    assert len(handed) <= 9
    assert [0, *reader] == list(range(12))
