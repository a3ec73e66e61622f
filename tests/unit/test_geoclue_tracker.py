"""geoclue.Tracker: GeoClue's clients from the monitored calls, against other callers
meddling, replies out of order and hostile values. The describer is the real one (this
process)."""

from __future__ import annotations

import os

import pytest

from camguard.core.models import DeviceKind
from camguard.platform.linux.geoclue_track import CLIENT_IFACE, MANAGER_PATH, PROPS_IFACE, Tracker
from camguard.platform.process import ProcessDescriber

APP, OTHER = ":1.7", ":1.9"
PATH = "/org/freedesktop/GeoClue2/Client/1"
ME = os.getpid()


def pid_of(name: str) -> int | None:
    return ME if name == APP else None


def started(t: Tracker, desktop_id: object = "org.example.Maps", level: object = 8) -> None:
    t.call(APP, 1, path=MANAGER_PATH, iface="org.freedesktop.GeoClue2.Manager",
           member="GetClient", body=())
    t.reply(APP, 1, (PATH,), False, pid_of)
    t.call(APP, 2, path=PATH, iface=PROPS_IFACE, member="Set",
           body=(CLIENT_IFACE, "DesktopId", ("s", desktop_id)))
    t.call(APP, 3, path=PATH, iface=PROPS_IFACE, member="Set",
           body=(CLIENT_IFACE, "RequestedAccuracyLevel", ("u", level)))
    t.call(APP, 4, path=PATH, iface=CLIENT_IFACE, member="Start", body=())
    assert t.reply(APP, 4, (), False, pid_of) is True


def names(t: Tracker) -> list[tuple[int | None, str]]:
    return [(u.process.pid if u.process else None, u.note)
            for u in t.usages(ProcessDescriber().describe)]


def test_a_started_client_is_its_apps_use_until_stop() -> None:
    t = Tracker()
    started(t)
    ((pid, note),) = names(t)
    assert pid == ME and "'org.example.Maps' (as the app claims)" in note
    assert "accuracy: exact" in note
    assert next(iter(t.usages(ProcessDescriber().describe))).device.kind is DeviceKind.LOCATION
    t.call(APP, 5, path=PATH, iface=CLIENT_IFACE, member="Stop", body=())
    assert t.reply(APP, 5, (), False, pid_of) is True
    assert names(t) == []


def test_a_refused_start_is_no_use() -> None:
    t = Tracker()
    t.call(APP, 1, path=MANAGER_PATH, iface="", member="CreateClient", body=())
    t.reply(APP, 1, (PATH,), False, pid_of)
    t.call(APP, 2, path=PATH, iface=CLIENT_IFACE, member="Start", body=())
    assert t.reply(APP, 2, ("access denied",), True, pid_of) is False
    assert names(t) == []


def test_another_caller_cannot_start_stop_or_relabel_a_client() -> None:
    t = Tracker()
    started(t)
    t.call(OTHER, 9, path=PATH, iface=CLIENT_IFACE, member="Stop", body=())
    assert t.reply(OTHER, 9, (), False, pid_of) is False
    t.call(OTHER, 10, path=PATH, iface=PROPS_IFACE, member="Set",
           body=(CLIENT_IFACE, "DesktopId", ("s", "innocent")))
    t.call(OTHER, 11, path=MANAGER_PATH, iface="", member="DeleteClient", body=(PATH,))
    ((pid, note),) = names(t)
    assert pid == ME and "innocent" not in note


def test_the_app_leaving_the_bus_or_deleting_its_client_ends_the_use() -> None:
    t = Tracker()
    started(t)
    assert t.vanished(OTHER) is False
    assert t.vanished(APP) is True and names(t) == []
    started(t)
    assert t.call(APP, 6, path=MANAGER_PATH, iface="", member="DeleteClient", body=(PATH,))
    assert names(t) == []


@pytest.mark.parametrize(("desktop_id", "level"), [
    ("<b>x</b>\x1b[2J\u202e" + "A" * 65536, 8), (5, "eight"), (None, None), ("", 3),
])
def test_hostile_values_are_kept_literally_and_bounded(desktop_id: object, level: object
                                                       ) -> None:
    t = Tracker()
    started(t, desktop_id, level)
    ((pid, note),) = names(t)
    assert pid == ME and len(note) < 300
    if isinstance(desktop_id, str) and desktop_id:
        assert "<b>x</b>\x1b[2J\u202e" in note and "characters)" in note
    if level == 3:
        assert "accuracy: 3" in note


@pytest.mark.parametrize("body", [(), ("only-one",), (CLIENT_IFACE, "DesktopId"),
                                  (CLIENT_IFACE, "DesktopId", "not-a-variant"), (1, 2, 3)])
def test_malformed_calls_are_ignored(body: tuple[object, ...]) -> None:
    t = Tracker()
    started(t)
    t.call(APP, 7, path=PATH, iface=PROPS_IFACE, member="Set", body=body)
    t.call(APP, 8, path=MANAGER_PATH, iface="", member="DeleteClient", body=body[:0])
    t.reply(APP, 999, ("x",), False, pid_of)  # a reply to nothing we saw
    assert len(names(t)) == 1


def test_a_client_whose_owner_cannot_be_named_is_still_a_use() -> None:
    t = Tracker()
    t.call(OTHER, 1, path=MANAGER_PATH, iface="", member="GetClient", body=())
    t.reply(OTHER, 1, (PATH,), False, pid_of)
    t.call(OTHER, 2, path=PATH, iface=CLIENT_IFACE, member="Start", body=())
    t.reply(OTHER, 2, (), False, pid_of)
    ((pid, note),) = names(t)
    assert pid is None and "cannot see (bus name :1.9)" in note
