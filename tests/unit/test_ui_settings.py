"""The settings window's file: round trips, other owners' keys kept, damaged files kept aside."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from camguard.store.policy import NO_POLICY, Policy, load_user_settings
from camguard.store.settings import load_detection_settings
from camguard.store.ui_settings import (
    NOTIFICATION,
    POPUP,
    UiSettings,
    UiSettingsFile,
    changed_fields,
    settings_in_force,
)

EVERYTHING = UiSettings(alert_default="kill", countdown=45.0, notification_channel=POPUP,
                        retention_days=30, camera_globs=("/dev/cam*", "/dev/video9"),
                        mic_globs=(), watch_sound_server=False)
OTHERS: dict[str, dict[str, Any]] = {
    "future_section": {"nested": [1, 2, {"x": None}]},
    "detection": {"rescan_interval": 12.5, "settle": 0.01, "not_known_yet": "keep me"},
    "settings": {"syslog": "udp://127.0.0.1:514", "mode": "notify-only"},
    "ui": {"window_geometry": "800x600"},
}


def values(s: UiSettings) -> dict[str, object]:
    return {n: getattr(s, n) for n in changed_fields(UiSettings(), s) | {"countdown"}}


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert UiSettingsFile(tmp_path / "settings.json").load() == (UiSettings(), [])


def test_every_value_round_trips_privately(tmp_path: Path) -> None:
    f = UiSettingsFile(tmp_path / "new" / "settings.json")
    assert f.save(values(EVERYTHING)) == []
    assert f.load() == (EVERYTHING, [])
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.path.parent.stat().st_mode) == 0o700
    assert f.present() == frozenset(values(EVERYTHING))


def test_other_keys_and_sections_survive(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(OTHERS))
    UiSettingsFile(path).save(values(EVERYTHING))
    doc = json.loads(path.read_text())
    assert doc["future_section"] == OTHERS["future_section"]
    for section in ("detection", "settings", "ui"):
        for key, value in OTHERS[section].items():
            assert doc[section][key] == value, (section, key)
    assert doc["detection"]["camera_globs"] == ["/dev/cam*", "/dev/video9"]
    assert doc["settings"]["alert_default"] == "kill"
    assert doc["ui"]["alert_countdown"] == 45.0


def test_the_other_readers_see_the_saved_values(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    UiSettingsFile(path).save(values(EVERYTHING))
    detection, problems = load_detection_settings(path)
    assert problems == []  # the monitor's reader: nothing unknown in "detection"
    assert detection.camera_globs == EVERYTHING.camera_globs
    assert detection.mic_globs == () and detection.watch_sound_server is False
    user, problems = load_user_settings(path)
    assert problems == []  # the policy's reader: nothing unknown in "settings"
    assert user["alert_default"] == "kill"


def test_a_corrupt_file_is_moved_aside_before_it_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    garbage = b'{"detection": {"camera_globs": ["/dev/my\xffcam"]' + b"\x00 not json"
    path.write_bytes(garbage)
    f = UiSettingsFile(path)
    settings, problems = f.load()
    assert settings == UiSettings() and len(problems) == 1 and "not valid JSON" in problems[0]
    assert path.read_bytes() == garbage  # loading never changes the file
    notes = f.save({"countdown": 20})
    assert len(notes) == 1 and "settings.json.corrupt-1" in notes[0]
    assert (tmp_path / "settings.json.corrupt-1").read_bytes() == garbage  # kept, exactly
    assert f.load() == (UiSettings(countdown=20.0), [])
    path.write_bytes(b"[1, 2]")  # valid JSON, but not an object: also kept
    f.save({"countdown": 25})
    assert (tmp_path / "settings.json.corrupt-2").read_bytes() == b"[1, 2]"


def test_a_section_of_the_wrong_type_is_kept_in_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = b'{"detection": "oops", "ui": {"alert_countdown": 12}}'
    path.write_bytes(original)
    f = UiSettingsFile(path)
    settings, problems = f.load()
    assert settings.countdown == 12.0 and any("'detection' must be an object" in p
                                              for p in problems)
    notes = f.save({"camera_globs": ("/dev/video*",)})
    [copy] = tmp_path.glob("settings.json.rejected-*")
    assert copy.read_bytes() == original and copy.name in notes[0]
    doc = json.loads(path.read_text())
    assert doc == {"detection": {"camera_globs": ["/dev/video*"]},
                   "ui": {"alert_countdown": 12}}


def test_bad_values_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(OTHERS))
    before = path.read_bytes()
    f = UiSettingsFile(path)
    for bad in ({"countdown": 0}, {"countdown": float("nan")}, {"retention_days": -1},
                {"notification_channel": "carrier pigeon"}, {"alert_default": "explode"},
                {"camera_globs": ["relative/*"]}, {"watch_sound_server": "yes"},
                {"no_such_setting": 1}):
        with pytest.raises(ValueError, match=r"must be|bad value|unknown setting"):
            f.save(bad)
    assert path.read_bytes() == before


def test_bad_values_in_the_file_fall_back_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"ui": {"alert_countdown": "soon", "notification_channel":
                                       NOTIFICATION, "history_retention_days": 7.5}}))
    settings, problems = UiSettingsFile(path).load()
    assert settings == UiSettings(notification_channel=NOTIFICATION)
    assert len(problems) == 2


def test_an_unreadable_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.mkdir()  # reading it fails with an OSError, as an unreadable file would
    f = UiSettingsFile(path)
    settings, problems = f.load()
    assert settings == UiSettings() and "cannot read" in problems[0]
    with pytest.raises(OSError, match="directory"):
        f.save({"countdown": 20})
    assert path.is_dir()


def test_text_that_is_not_utf8_round_trips_in_a_valid_file(tmp_path: Path) -> None:
    f = UiSettingsFile(tmp_path / "settings.json")
    odd = ("/dev/caméra\udcff*",)  # a lone surrogate: a path byte that is not UTF-8
    f.save({"camera_globs": odd})
    f.path.read_bytes().decode("utf-8")  # strict
    assert f.load()[0].camera_globs == odd


def test_concurrent_savers_do_not_lose_each_others_changes(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    errors: list[BaseException] = []

    def saver(name: str, value_of: object) -> None:
        try:
            for i in range(30):
                UiSettingsFile(path).save({name: value_of(i)})  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=("countdown", lambda i: 10 + i)),
               threading.Thread(target=saver, args=("retention_days", lambda i: 100 + i))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    settings, problems = UiSettingsFile(path).load()
    assert problems == []
    assert (settings.countdown, settings.retention_days) == (39.0, 129)


def test_settings_in_force_apply_the_policy(tmp_path: Path) -> None:
    f = UiSettingsFile(tmp_path / "settings.json")
    f.save({"alert_default": "block", "countdown": 15, "mic_globs": ("/dev/snd/x*",)})
    policy = Policy("policy /etc/camguard/policy.toml",
                    {"alert_default": "kill", "camera_globs": ("/dev/v*",)},
                    frozenset({"alert_default"}))
    settings, problems = settings_in_force(f, policy)
    assert problems == []
    assert settings.alert_default == "kill"  # locked: the policy's value
    assert settings.camera_globs == ("/dev/v*",)  # a default the policy sets
    assert settings.mic_globs == ("/dev/snd/x*",) and settings.countdown == 15.0  # the user's


def test_an_unchosen_default_answer_is_the_safe_one_under_a_parental_lock(tmp_path: Path
                                                                          ) -> None:
    f = UiSettingsFile(tmp_path / "settings.json")
    assert settings_in_force(f, NO_POLICY)[0].alert_default == "allow"  # a laptop owner
    assert settings_in_force(f, NO_POLICY, parental=True)[0].alert_default == "block"
    # The mode that blocks whatever is not allowed: nobody answering blocks too.
    f.path.write_text('{"settings": {"mode": "block-all-not-allowed"}}')
    assert settings_in_force(f, NO_POLICY)[0].alert_default == "block"
    # What someone chose stays chosen, lock or not.
    f.save({"alert_default": "allow"})
    assert settings_in_force(f, NO_POLICY, parental=True)[0].alert_default == "allow"
    policy = Policy("policy", {"alert_default": "kill"}, frozenset({"alert_default"}))
    assert settings_in_force(f, policy, parental=True)[0].alert_default == "kill"
