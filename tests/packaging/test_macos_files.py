"""The macOS files, as far as Linux can check them (nothing is built or run: no Mac here)."""

from __future__ import annotations

import plistlib
from pathlib import Path

from tests.packaging.conftest import REPO

MACOS = REPO / "packaging" / "macos"


def load(name: str) -> dict[str, object]:
    with (MACOS / name).open("rb") as f:
        doc = plistlib.load(f)
    assert isinstance(doc, dict)
    return doc


def test_info_plist_is_a_tray_app_that_explains_its_device_use() -> None:
    info = load("Info.plist")
    assert info["LSUIElement"] is True
    for key in ("NSCameraUsageDescription", "NSMicrophoneUsageDescription"):
        text = info[key]
        assert isinstance(text, str) and "self-test" in text
    assert info["CFBundleIdentifier"] == "org.camguard.camguard"


def test_launch_agent_starts_the_bundled_tray_in_gui_sessions() -> None:
    agent = load("org.camguard.agent.plist")
    assert agent["Label"] == "org.camguard.agent"
    assert agent["ProgramArguments"] == [
        "/Applications/camguard.app/Contents/MacOS/camguard", "tray"]
    assert agent["RunAtLoad"] is True and agent["LimitLoadToSessionType"] == "Aqua"
    assert agent["AssociatedBundleIdentifiers"] == load("Info.plist")["CFBundleIdentifier"]


def test_entitlements_allow_the_devices_the_selftest_opens() -> None:
    ent = load("entitlements.plist")
    assert ent["com.apple.security.device.camera"] is True
    assert ent["com.apple.security.device.audio-input"] is True


def test_build_notes_cover_signing_and_notarisation() -> None:
    notes = (MACOS / "BUILD.md").read_text()
    for step in ("codesign", "--options runtime", "pkgbuild", "productbuild",
                 "notarytool submit", "--wait", "stapler staple",
                 "Nothing on this page was run"):
        assert step in notes, step
    assert "Info.plist" in Path(REPO / "packaging" / "pyinstaller" / "camguard.spec").read_text()
