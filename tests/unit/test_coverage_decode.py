"""The service's "coverage" read back (app/service_decode.coverage_from_doc): what the tray's
main window shows in service mode. An answer without it is "not reported"; an entry that is
not one is left out; the text is kept as sent (the window shows it literally)."""

from __future__ import annotations

from camguard.app.service_decode import coverage_from_doc
from camguard.core.coverage import Coverage, CoverageState, coverage_list


def test_an_answer_without_coverage_is_not_reported() -> None:
    assert coverage_from_doc({"devices": []}) is None
    assert coverage_from_doc({"coverage": "everything"}) is None
    assert coverage_from_doc({"coverage": []}) == []


def test_entries_round_trip_and_broken_ones_are_left_out() -> None:
    hostile = "<b>x</b>\x1b[31m\n" + "r" * 65536
    sent = [Coverage("camera", "procfs", CoverageState.WATCHING, "device nodes"),
            Coverage("location", "geoclue", CoverageState.BLIND, hostile)]
    doc = {"coverage": [*coverage_list(sent), None, 7, {"sensor": "camera"},
                        {"sensor": "screen", "source": "pipewire", "state": "asleep"},
                        {"sensor": "screen", "source": "pipewire", "state": "partial",
                         "reason": 5}]}
    got = coverage_from_doc(doc)
    assert got is not None
    assert got[:2] == [sent[0], Coverage("location", "geoclue", CoverageState.BLIND,
                                         coverage_list(sent)[1]["reason"])]
    assert got[2:] == [Coverage("screen", "pipewire", CoverageState.PARTIAL, "")]
    assert "<b>x</b>" in got[1].reason
