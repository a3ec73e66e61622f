"""Taking back a camera permission on macOS (platform/macos/revoke.py), on Linux: bundle ids
read from real .app folders made here, the argv handed to a real child process standing in
for /usr/bin/tccutil (which Linux lacks), hostile Info.plists, and the camera block's
optional reset through MacEnforcer. tccutil itself never ran here."""

from __future__ import annotations

import plistlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from camguard.core.blocks import BlockOptions, Outcome
from camguard.core.models import DeviceKind
from camguard.platform.macos.mute import MacEnforcer
from camguard.platform.macos.revoke import (
    UNDO,
    Holder,
    TccRevoker,
    bundle_id_of,
    reset_argv,
    valid_bundle_id,
)


def make_app(root: Path, name: str, bundle_id: object, *, raw: bytes | None = None) -> Path:
    """``root/name.app`` with Contents/Info.plist and an executable path inside it."""
    contents = root / f"{name}.app" / "Contents"
    (contents / "MacOS").mkdir(parents=True)
    keys: dict[str, Any] = {"CFBundleName": name}
    if bundle_id is not None:
        keys["CFBundleIdentifier"] = bundle_id
    doc = raw if raw is not None else plistlib.dumps(keys)
    (contents / "Info.plist").write_bytes(doc)
    exe = contents / "MacOS" / name
    exe.write_bytes(b"")
    return exe


def test_the_bundle_id_comes_from_the_outermost_app(tmp_path: Path) -> None:
    zoom = make_app(tmp_path, "zoom.us", "us.zoom.xos")
    assert bundle_id_of(str(zoom)) == "us.zoom.xos"
    # Chrome's helper is an app inside the app: TCC charges its use to Google Chrome.
    chrome = make_app(tmp_path, "Google Chrome", "com.google.Chrome")
    frameworks = chrome.parents[1] / "Frameworks"
    helper = make_app(frameworks, "Google Chrome Helper", "com.google.Chrome.helper")
    assert bundle_id_of(str(helper)) == "com.google.Chrome"
    assert bundle_id_of("/usr/local/bin/ffmpeg") is None  # no bundle: nothing to reset


@pytest.mark.parametrize("bundle", [
    "-rf", "--help", "com.example app", "com.example;rm -rf ~", "com.example\n",
    "com.\u202eevil", "a" * 300, "", 42, None, "com..example"])
def test_hostile_or_missing_ids_are_never_passed_on(tmp_path: Path, bundle: Any) -> None:
    exe = make_app(tmp_path, "Evil", bundle)
    assert bundle_id_of(str(exe)) is None
    assert valid_bundle_id(bundle) is None
    with pytest.raises(ValueError, match="not a bundle id"):
        reset_argv(DeviceKind.CAMERA, bundle if isinstance(bundle, str) else "")


@pytest.mark.parametrize("raw", [b"not a plist", b"\xff\xfe" * 100, b"bplist00\x00\x01",
                                 plistlib.dumps(["a", "list"])])
def test_a_broken_info_plist_gives_no_id(tmp_path: Path, raw: bytes) -> None:
    assert bundle_id_of(str(make_app(tmp_path, "Broken", None, raw=raw))) is None


def test_an_oversized_info_plist_is_not_read_whole(tmp_path: Path) -> None:
    big = plistlib.dumps({"CFBundleIdentifier": "org.example.big", "pad": "x" * (2 << 20)})
    assert bundle_id_of(str(make_app(tmp_path, "Big", None, raw=big))) is None


@pytest.fixture
def fake_tccutil(tmp_path: Path) -> tuple[str, Path]:
    """A real executable at a path given as the tool: it records its argv, one per line,
    and fails for the bundle id "org.example.fails" as tccutil fails for an unknown one."""
    out = tmp_path / "argv.txt"
    tool = tmp_path / "tccutil"
    tool.write_text(f"#!{sys.executable}\n"
                    "import sys\n"
                    f"open({str(out)!r}, 'a').write('\\x00'.join(sys.argv[1:]) + '\\n')\n"
                    "if sys.argv[-1] == 'org.example.fails':\n"
                    "    sys.stderr.write('tccutil: No such bundle identifier \\x1b[31m\\n')\n"
                    "    sys.exit(1)\n")
    tool.chmod(0o755)
    return str(tool), out


def test_reset_runs_the_tool_with_an_argv_list(fake_tccutil: tuple[str, Path]) -> None:
    tool, out = fake_tccutil
    result = TccRevoker(tool=tool, euid=501).revoke(DeviceKind.CAMERA, "us.zoom.xos")
    assert result.outcome is Outcome.DONE
    assert out.read_text() == "reset\x00Camera\x00us.zoom.xos\n"
    assert UNDO in result.message  # every reset says it cannot be undone
    mic = TccRevoker(tool=tool, euid=501).revoke(DeviceKind.MICROPHONE, "us.zoom.xos")
    assert mic.ok and out.read_text().splitlines()[1] == "reset\x00Microphone\x00us.zoom.xos"


def test_a_failed_reset_says_what_tccutil_said_literally(fake_tccutil: tuple[str, Path]
                                                         ) -> None:
    tool, _out = fake_tccutil
    result = TccRevoker(tool=tool, euid=501).revoke(DeviceKind.CAMERA, "org.example.fails")
    assert result.outcome is Outcome.FAILED
    assert "No such bundle identifier" in result.message
    assert "\x1b" not in result.message  # a control character is shown, not sent


def test_a_missing_tool_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    revoker = TccRevoker(tool=str(tmp_path / "no-tccutil"), euid=501)
    result = revoker.revoke(DeviceKind.CAMERA, "a.b")
    assert result.outcome is Outcome.FAILED and "cannot run tccutil" in result.message


def test_holders_are_reset_once_per_app_and_bare_tools_are_named(
        tmp_path: Path, fake_tccutil: tuple[str, Path]) -> None:
    tool, out = fake_tccutil
    zoom = make_app(tmp_path, "zoom.us", "us.zoom.xos")
    holders = [Holder(10, str(zoom), "zoom.us"), Holder(11, str(zoom), "zoom.us"),
               Holder(12, "/opt/homebrew/bin/ffmpeg", "ffmpeg")]
    results = TccRevoker(tool=tool, euid=501).revoke_holders(DeviceKind.CAMERA, holders)
    assert out.read_text().count("us.zoom.xos") == 1
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.NOT_FOUND]
    assert "ffmpeg (pid 12) is not in an app bundle" in results[1].message


class FakeRun:
    """subprocess.run at the OS boundary, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        self.calls.append((argv, kw))
        return subprocess.CompletedProcess(argv, 0, b"", b"")


def test_a_persistent_camera_block_resets_the_users_grants_and_says_what_it_cannot(
        tmp_path: Path) -> None:
    run = FakeRun()
    zoom = make_app(tmp_path, "zoom.us", "us.zoom.xos")
    asked: list[DeviceKind] = []

    def holders(kind: DeviceKind) -> list[Holder]:
        asked.append(kind)
        return [Holder(10, str(zoom), "zoom.us")]

    enforcer = MacEnforcer(None, TccRevoker(run, euid=501), holders)
    plain = enforcer.apply(DeviceKind.CAMERA, BlockOptions())
    assert run.calls == [] and asked == []  # only when asked for (--persistent)
    assert plain.result.outcome is Outcome.FAILED
    applied = enforcer.apply(DeviceKind.CAMERA, BlockOptions(persistent=True))
    assert asked == [DeviceKind.CAMERA]
    [(argv, kw)] = run.calls
    assert argv == ["/usr/bin/tccutil", "reset", "Camera", "us.zoom.xos"]
    assert kw.get("shell", False) is False and kw["timeout"] > 0
    # The camera is still on for the running app: the block says it failed, and why.
    assert applied.result.outcome is Outcome.FAILED
    assert "camguard kill PID" in applied.result.message
    assert any("us.zoom.xos" in d and "cannot be undone" in d for d in applied.result.details)
    assert applied.steps == ()  # nothing camguard could undo


def test_a_persistent_block_with_nobody_on_the_camera_resets_nothing() -> None:
    run = FakeRun()
    applied = MacEnforcer(None, TccRevoker(run, euid=501), lambda _kind: []).apply(
        DeviceKind.CAMERA, BlockOptions(persistent=True))
    assert run.calls == [] and "no app uses the camera" in applied.result.details[0]


def test_the_root_service_refuses_rather_than_reset_roots_own_answers(tmp_path: Path) -> None:
    run = FakeRun()
    zoom = make_app(tmp_path, "zoom.us", "us.zoom.xos")
    [result] = TccRevoker(run, euid=0).revoke_holders(
        DeviceKind.CAMERA, [Holder(10, str(zoom), "zoom.us")])
    assert result.outcome is Outcome.REFUSED and "per account" in result.message
    assert run.calls == []
