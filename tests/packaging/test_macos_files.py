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


def test_launch_daemon_runs_the_service_as_root_off_until_enabled() -> None:
    daemon = load("org.camguard.service.plist")
    assert daemon["Label"] == "org.camguard.service"
    args = daemon["ProgramArguments"]
    assert isinstance(args, list)
    assert args[:2] == ["/Applications/camguard.app/Contents/MacOS/camguard", "service"]
    # macOS's administrators are the group "admin" (gid 80), not Linux's camguard-admins.
    assert args[args.index("--admin-group") + 1] == "admin"
    assert daemon["UserName"] == "root" and daemon["RunAtLoad"] is True
    assert daemon["Disabled"] is True  # as the .deb and the MSI: an administrator enables it
    assert daemon["KeepAlive"] == {"SuccessfulExit": False}
    assert "LimitLoadToSessionType" not in daemon  # a daemon, in the system domain
    assert daemon["AssociatedBundleIdentifiers"] == load("Info.plist")["CFBundleIdentifier"]
    # The command line the daemon runs is one camguard accepts.
    from camguard.cli import build_parser

    parsed = build_parser().parse_args(args[1:])
    assert parsed.admin_group == "admin"


def test_the_pkg_installs_the_daemon_where_launchd_reads_it() -> None:
    script = (MACOS / "build_pkg.sh").read_text()
    assert ('install -m 0644 "$HERE/org.camguard.service.plist" '
            '"$ROOT/Library/LaunchDaemons/"') in script
    assert "launchctl enable system/org.camguard.service" in (MACOS / "BUILD.md").read_text()
