"""Settings files: defaults, overrides, and bad files that are reported but never fatal."""

from __future__ import annotations

from pathlib import Path

from camguard.core.settings import DEFAULT_CAMERA_GLOBS, DetectionSettings
from camguard.store.settings import load_detection_settings


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
