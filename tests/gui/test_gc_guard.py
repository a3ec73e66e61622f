"""Cyclic garbage made on a worker thread is collected on the GUI thread (gc_guard.py)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from pytestqt.qtbot import QtBot

from camguard.ui.gc_guard import GuiThreadCollector, collect_due


class Cycle:
    """Part of a reference cycle; records the thread that finalises it."""

    died_on: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cycle.died_on.append(threading.current_thread().name)


@pytest.fixture
def automatic_gc() -> Iterator[None]:
    """As in production: the automatic collector on (the GUI suite turns it off)."""
    Cycle.died_on.clear()
    gc.collect()
    gc.enable()
    yield
    gc.disable()
    gc.collect()


def churn() -> None:
    # Enough cyclic garbage to pass generation 0's threshold many times over.
    for _ in range(20 * max(gc.get_threshold()[0], 100)):
        Cycle()


def test_worker_garbage_is_collected_on_the_gui_thread(qtbot: QtBot, automatic_gc: None) -> None:
    collector = GuiThreadCollector(interval_ms=10)
    collector.start()
    try:
        assert not gc.isenabled()
        worker = threading.Thread(target=churn, name="camguard-worker-test")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: len(Cycle.died_on) > 1000, timeout=10_000)
    finally:
        collector.stop()
    assert gc.isenabled()  # given back as it was
    assert set(Cycle.died_on) == {threading.main_thread().name}


def test_without_the_collector_a_worker_collects(automatic_gc: None) -> None:
    # What gc_guard prevents, shown on this interpreter: the worker finalises Qt-free
    # garbage itself. If this ever stops being true, gc_guard is no longer needed.
    worker = threading.Thread(target=churn, name="camguard-worker-test")
    worker.start()
    worker.join()
    assert "camguard-worker-test" in Cycle.died_on


def test_collect_due_follows_the_thresholds(automatic_gc: None) -> None:
    gc.collect()
    gc.disable()
    assert collect_due() == -1  # nothing allocated since: nothing due
    churn()
    assert collect_due() > 0
