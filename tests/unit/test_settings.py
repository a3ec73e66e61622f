"""Settings files: defaults, overrides, and bad files that are reported but never fatal."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from camguard.core.settings import DEFAULT_CAMERA_GLOBS, DetectionSettings
from camguard.store.policy import DETECTION, load_user_settings
from camguard.store.settings import load_detection_settings
from camguard.store.ui_settings import UiSettings, UiSettingsFile


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_detection_settings(tmp_path / "nope.json") == (DetectionSettings(), [])


def test_values_are_read(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"detection": {"camera_globs": ["/dev/cam*"], "rescan_interval": 5,'
                 ' "watch_sound_server": false}}')
    settings, problems = load_detection_settings(f)
    assert problems == []
    assert settings.camera_globs == ("/dev/cam*",)
    assert settings.rescan_interval == 5.0 and settings.watch_sound_server is False


def test_corrupt_file_is_reported_and_kept(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_bytes(b"{\xff not json")
    settings, problems = load_detection_settings(f)
    assert settings == DetectionSettings() and len(problems) == 1
    assert f.read_bytes() == b"{\xff not json"  # nothing the user wrote is lost


def test_bad_values_fall_back_one_by_one(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"detection": {"camera_globs": "not-a-list", "settle": -1, "bogus": 1,'
                 ' "mic_globs": ["/x*"]}}')
    settings, problems = load_detection_settings(f)
    assert settings.camera_globs == DEFAULT_CAMERA_GLOBS and settings.mic_globs == ("/x*",)
    assert len(problems) == 3


def test_one_schema_for_the_detection_section() -> None:
    defaults = DetectionSettings()
    assert {f.name for f in fields(DetectionSettings)} == set(DETECTION)
    assert {name: spec.default for name, spec in DETECTION.items()} == {
        f.name: getattr(defaults, f.name) for f in fields(DetectionSettings)}


def test_the_same_checks_as_the_managed_settings(tmp_path: Path) -> None:
    # Once a second validator, looser than the policy's: a relative pattern, an endless
    # number and a relative sound-server path were taken as they were.
    f = tmp_path / "s.json"
    f.write_text('{"detection": {"camera_globs": ["video*"], "rescan_interval": 1e400,'
                 ' "sound_server_exes": ["pipewire"], "settle": 0.01}}')
    settings, problems = load_detection_settings(f)
    assert settings == DetectionSettings(settle=0.01)
    assert len(problems) == 3 and "must be an absolute path" in problems[0]


@pytest.mark.parametrize("content", [b"[1]", b"{\xff", b'{"a": 1}' + b" " * (1 << 20)])
def test_every_reader_says_the_same_about_a_bad_file(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "settings.json"
    f.write_bytes(content)
    detection, problems = load_detection_settings(f)
    user, more = load_user_settings(f)
    ui, yet_more = UiSettingsFile(f).load()
    assert (detection, user, ui) == (DetectionSettings(), {}, UiSettings())
    assert len(problems) == 1 and problems == more == yet_more
