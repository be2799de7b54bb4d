"""Reading rows ahead of the writes: order, errors where they happen, and no reader left behind."""

import threading
import time

import pytest

from tasks.imports import read_ahead


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

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    reader = read_ahead(items(), chunk=10, depth=2)
    assert next(reader) == 0
    time.sleep(0.3)
    # One chunk handed over, two waiting in the queue, and one being filled.
    assert len(produced) <= 10 * 4 + 1
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
    reader.close()
    assert not [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
