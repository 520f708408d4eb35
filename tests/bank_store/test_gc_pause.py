"""The collector pause around bulk adds and imports: counted, restored, and off only meanwhile."""

import gc
import threading

import pytest

from bank_store import DiscrepancyBank
from bank_store.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_nested_pauses_restore_the_collector_only_at_the_end():
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_an_error_inside_still_restores_the_collector():
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()


def test_concurrent_pauses_end_with_the_last_one():
    inside, release = threading.Event(), threading.Event()

    def other():
        with gc_paused():
            inside.set()
            release.wait(60)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(60)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's pause is still on
    release.set()
    t.join(60)
    assert gc.isenabled()


def test_a_bulk_add_runs_with_the_collector_paused_and_restores_it(tmp_path):
    bank = DiscrepancyBank(tmp_path / "bank.sqlite3")
    bank.create_profile("P", ["a", "b"])
    seen = []

    class Probe(dict):
        """A rating dict that records whether the collector was on when it was read."""

        def get(self, key, default=None):
            seen.append(gc.isenabled())
            return super().get(key, default)

    assert bank.add_ratings("P", [Probe(instance="x", model_response="a",
                                        user_response="b")]) == 1
    assert seen and not any(seen)
    assert gc.isenabled()
    assert bank.counts("P") == {("a", "b"): 1}
