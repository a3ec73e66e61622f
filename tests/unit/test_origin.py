"""Where an app comes from: the pure parts (core.origin, origin rules in the one evaluator,
the allow list's trust in a package) and the Linux readers on recorded real-format data
(cgroup lines, .flatpak-info, environ) and on dpkg databases the tests write in the format
dpkg writes (real processes and a real dpkg are in tests/integration/test_origin.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import UsageFacts, decide
from camguard.core.models import DeviceKind
from camguard.core.origin import (
    ExeOrigin,
    OriginKind,
    origin_dict,
    origin_from_dict,
    origin_line,
    parse_origin_key,
)
from camguard.core.rules import AppMatch, MatchBy, Mode, RuleError, Verdict, make_rule
from camguard.core.rules_json import rule_from_json, rule_to_json
from camguard.platform.linux import sandbox
from camguard.platform.linux.dpkg import DpkgIndex, md5_file
from camguard.platform.linux.origin import LinuxOriginResolver
from camguard.store.allowlist import AllowList, AllowStatus
from camguard.store.db import Database

DEB_OK = ExeOrigin(OriginKind.DEB, "firefox-esr", True)
DEB_BAD = ExeOrigin(OriginKind.DEB, "firefox-esr", False, "", "md5 0123…")
LOCAL = ExeOrigin(OriginKind.LOCAL, "/home/u/firefox-esr", None, "ab" * 32)
CLOCK = FrozenClock(1_800_000_000.0)


# -- recorded real data (cgroup v2 lines from Debian 12 / Ubuntu 24.04 desktops) -----------
FLATPAK_CGROUP = ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
                  "app-flatpak-org.telegram.desktop-2731.scope\n")
SNAP_CGROUP = ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
               "snap.zoom-client.zoom-client-4d3c1f3e-5e4a-4b7b-9a37-0c1b8b8e2f11.scope\n")
SNAP_CGROUP_OLD = ("12:pids:/user.slice/user-1000.slice/user@1000.service\n"
                   "1:name=systemd:/user.slice/user-1000.slice/user@1000.service/"
                   "snap.firefox.firefox.8c3f8d2a-6b0e-4d4f-8d27-6a1f0d3b9e55.scope\n"
                   "0::/user.slice/user-1000.slice/user@1000.service/"
                   "snap.firefox.firefox.8c3f8d2a-6b0e-4d4f-8d27-6a1f0d3b9e55.scope\n")
SNAP_HOOK = ("0::/system.slice/"
             "snap.firefox.hook.configure-1b2c3d4e-aaaa-bbbb-cccc-123456789abc.scope\n")
PLAIN = ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
         "app-org.gnome.Terminal.slice/vte-spawn-1.scope\n")
FLATPAK_INFO = """[Application]
name=org.telegram.desktop
runtime=runtime/org.freedesktop.Platform/x86_64/23.08

[Instance]
instance-id=1956263491
instance-path=/home/u/.var/app/org.telegram.desktop
app-path=/var/lib/flatpak/app/org.telegram.desktop/x86_64/stable/5d1e/files
branch=stable
arch=x86_64
flatpak-version=1.14.4
session-bus-proxy=true

[Context]
shared=network;ipc;
sockets=x11;wayland;pulseaudio;
devices=all;
"""


def test_cgroups_and_flatpak_info_name_sandboxed_apps() -> None:
    assert sandbox.flatpak_from_cgroup(FLATPAK_CGROUP) == "org.telegram.desktop"
    assert sandbox.snap_from_cgroup(SNAP_CGROUP) == "zoom-client"
    assert sandbox.snap_from_cgroup(SNAP_CGROUP_OLD) == "firefox"
    assert sandbox.snap_from_cgroup(SNAP_HOOK) == "firefox"
    for text in (PLAIN, "0::/\n", "", "garbage\n\x00", SNAP_CGROUP):
        assert sandbox.flatpak_from_cgroup(text) is None
    for text in (PLAIN, FLATPAK_CGROUP, "0::/\n"):
        assert sandbox.snap_from_cgroup(text) is None
    assert sandbox.parse_flatpak_info(FLATPAK_INFO) == ("org.telegram.desktop", "stable")
    assert sandbox.parse_flatpak_info("[Runtime]\nruntime=runtime/org.gnome.Platform/"
                                      "x86_64/45\n") == ("org.gnome.Platform", "45")
    for junk in ("", "not ini", "[Application]\n", "\x00" * 100, "[a\n"):
        assert sandbox.parse_flatpak_info(junk) is None
    assert sandbox.snap_from_exe("/snap/zoom-client/225/zoom/zoom") == "zoom-client"
    assert sandbox.snap_from_exe("/home/u/snap/zoom-client/225/x") is None
    env = sandbox.parse_environ(b"HOME=/root\0APPIMAGE=/home/u/Apps/Zoom.AppImage\0"
                                b"SNAP_NAME=x\0\xff\xfe=\0")
    assert env == {"APPIMAGE": "/home/u/Apps/Zoom.AppImage", "SNAP_NAME": "x"}
    assert sandbox.appimage_from("/tmp/.mount_ZoomAbC123/usr/bin/zoom", env) == \
        "/home/u/Apps/Zoom.AppImage"
    assert sandbox.appimage_from("/usr/bin/zoom", env) is None


def test_sandbox_origin_of_this_process_is_none_and_a_snap_path_is_verified() -> None:
    assert sandbox.sandbox_origin(os.getpid(), os.path.realpath("/proc/self/exe")) is None
    snapped = sandbox.sandbox_origin(None, "/snap/zoom-client/225/zoom/zoom")
    assert snapped == ExeOrigin(OriginKind.SNAP, "zoom-client", True)


def test_origin_shapes_and_words() -> None:
    d = origin_dict(DEB_BAD)
    assert d == {"kind": "deb", "name": "firefox-esr", "verified": False, "detail": None,
                 "why": "md5 0123…"}
    assert origin_from_dict(d) == DEB_BAD and origin_dict(None) is None
    for junk in (None, 3, {"kind": "rpm", "name": "x"}, {"kind": "deb", "name": 3},
                 {"kind": "deb", "name": "x", "verified": "yes"}):
        assert origin_from_dict(junk) is None
    assert DEB_OK.trusted and not DEB_BAD.trusted and not LOCAL.trusted
    assert DEB_BAD.problem() == ("the file no longer matches its Debian package "
                                 "firefox-esr (md5 0123…)")
    assert DEB_OK.problem() is None and LOCAL.problem() is None
    assert DEB_OK.label("firefox-esr") == "firefox-esr (Debian package firefox-esr)"
    flat = ExeOrigin(OriginKind.FLATPAK, "org.telegram.desktop", None, "stable")
    assert flat.label("bwrap") == "bwrap (Flatpak org.telegram.desktop (stable))"
    assert flat.trusted and origin_line(DEB_BAD).endswith("(check FAILED)")
    # The digest's first 16 digits and one ellipsis, not literal()'s "(64 characters)"
    # cut-off note followed by a second ellipsis.
    assert origin_line(LOCAL) == f"a local file, not from any package (sha256 {'ab' * 8}…)"
    odd = ExeOrigin(OriginKind.LOCAL, "/x", None, "\x1b[2J")
    assert origin_line(odd) == "a local file, not from any package (sha256 \\x1b[2J)"
    hostile = ExeOrigin(OriginKind.FLATPAK, "a\nb\u202e<b>x</b>", None)
    assert "\n" not in hostile.label("n") and "\u202e" not in hostile.label("n")
    assert parse_origin_key("deb:firefox-esr") == (OriginKind.DEB, "firefox-esr")
    for bad in ("firefox", "rpm:x", "deb:", "local:/usr/bin/x", ":x"):
        with pytest.raises(ValueError):
            parse_origin_key(bad)


def _facts(origin: ExeOrigin | None, exe: str = "/usr/lib/firefox-esr/firefox-esr"
           ) -> UsageFacts:
    return UsageFacts(DeviceKind.CAMERA, exe, None, "firefox-esr", "u", 42, origin)


def test_an_origin_rule_holds_for_a_verified_file_only_and_says_why_not() -> None:
    rule = make_rule(Verdict.ALLOW, app=AppMatch(MatchBy.ORIGIN, "deb:firefox-esr"),
                     label="Firefox")
    assert rule.app.rank == 4 and rule.describe() == \
        "allow camera and microphone for the Debian package firefox-esr"
    ok = decide([rule], _facts(DEB_OK), Mode.ASK, CLOCK)
    assert ok.verdict is Verdict.ALLOW and ok.rule == rule and ok.notes == ()
    bad = decide([rule], _facts(DEB_BAD), Mode.ASK, CLOCK)
    assert bad.verdict is Verdict.ASK and bad.rule is None
    assert bad.notes == ("rule 'Firefox' not applied: the file no longer matches its Debian "
                         "package firefox-esr (md5 0123…)",)
    moved = decide([rule], _facts(LOCAL, LOCAL.name), Mode.ASK, CLOCK)
    assert moved.verdict is Verdict.ASK
    assert moved.notes == ("rule 'Firefox' not applied: this firefox-esr comes from the "
                           "local file /home/u/firefox-esr, not the Debian package "
                           "firefox-esr the rule trusts",)
    unknown = decide([rule], _facts(None), Mode.ASK, CLOCK)
    assert unknown.verdict is Verdict.ASK and unknown.notes == ()
    other = decide([rule], _facts(ExeOrigin(OriginKind.DEB, "chromium", True)), Mode.ASK, CLOCK)
    assert other.verdict is Verdict.ASK and other.notes == ()
    # Deny beats allow at the same rank: an exe block outranks nothing, an origin allow.
    block = make_rule(Verdict.BLOCK_DEVICE, app=AppMatch(MatchBy.NAME, "firefox-esr"))
    assert decide([rule, block], _facts(DEB_OK), Mode.ASK, CLOCK).rule == rule


def test_origin_rules_round_trip_and_refuse_what_they_cannot_mean() -> None:
    rule = make_rule(Verdict.ALLOW, app=AppMatch(MatchBy.ORIGIN, "flatpak:org.telegram.desktop"))
    doc = rule_to_json(rule)
    assert doc["app"] == {"match": "origin", "origin": "flatpak:org.telegram.desktop"}
    assert rule_from_json(doc) == rule
    for value in ("local:/usr/bin/x", "firefox", "", "rpm:x"):
        with pytest.raises(RuleError):
            AppMatch(MatchBy.ORIGIN, value)
    with pytest.raises(RuleError):
        AppMatch(MatchBy.ORIGIN, "deb:x", "ab" * 32)
    with pytest.raises(RuleError, match="takes no path"):
        rule_from_json({"verdict": "allow", "app": {"match": "origin", "path": "/x"}})


def test_the_allow_list_trusts_a_verified_package_across_updates(tmp_path: Path) -> None:
    allow = AllowList(Database(tmp_path / "db.sqlite3", CLOCK))
    exe = "/usr/lib/firefox-esr/firefox-esr"
    entry = allow.add(exe, "aa" * 32, DeviceKind.CAMERA, 1.0, origin=DEB_OK)
    assert entry.origin == "deb:firefox-esr" and allow.entries()[0].origin == "deb:firefox-esr"
    updated = allow.is_allowed(exe, "bb" * 32, DeviceKind.CAMERA, DEB_OK)
    assert updated.allowed and "its verified updates stay allowed" in updated.reason
    broken = allow.is_allowed(exe, "bb" * 32, DeviceKind.CAMERA, DEB_BAD)
    assert broken.status is AllowStatus.BINARY_CHANGED
    assert broken.asks_again.endswith("the file no longer matches its Debian package "
                                      "firefox-esr (md5 0123…)")
    moved = allow.is_allowed(exe, "bb" * 32, DeviceKind.CAMERA, LOCAL)
    assert moved.status is AllowStatus.BINARY_CHANGED and "now comes from the local file" \
        in moved.reason
    # Origin unknown (no lookup): the hash pins it, as for every local file.
    assert allow.is_allowed(exe, "aa" * 32, DeviceKind.CAMERA).allowed
    assert not allow.is_allowed(exe, "bb" * 32, DeviceKind.CAMERA).allowed
    local = allow.add("/opt/x/app", "cc" * 32, DeviceKind.CAMERA, 1.0, origin=LOCAL)
    assert local.origin is None  # a local file is pinned by its hash alone
    assert allow.is_allowed("/opt/x/app", "dd" * 32, DeviceKind.CAMERA, LOCAL).status is \
        AllowStatus.BINARY_CHANGED
    assert allow.is_allowed(exe, None, DeviceKind.MICROPHONE).status is AllowStatus.NOT_LISTED


# -- dpkg's database in the format dpkg writes ----------------------------------------------
def _admin(tmp_path: Path, packages: dict[str, dict[str, str | None]],
           diversions: str = "") -> Path:
    """An admin dir: {list stem: {path: md5 or None (not summed)}}."""
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True, exist_ok=True)
    (admin / "status").write_text("")
    for stem, files in packages.items():
        folders = sorted({str(Path(p).parent) for p in files} | {"/."})
        (admin / "info" / f"{stem}.list").write_text("\n".join([*folders, *files]) + "\n")
        sums = [f"{md5}  {p.lstrip('/')}" for p, md5 in files.items() if md5]
        (admin / "info" / f"{stem}.md5sums").write_text("\n".join(sums) + "\n")
    if diversions:
        (admin / "diversions").write_text(diversions)
    return admin


def test_dpkg_index_owner_verify_diversions_merged_usr_and_rebuild(tmp_path: Path) -> None:
    real = tmp_path / "root"
    (real / "usr" / "bin").mkdir(parents=True)
    app = real / "usr" / "bin" / "app"
    app.write_bytes(b"\x7fELF version 1")
    good = hashlib.md5(app.read_bytes(), usedforsecurity=False).hexdigest()
    admin = _admin(tmp_path, {"app:amd64": {"/usr/bin/app": good},
                              "tool": {"/bin/tool": None, "/usr/bin/gone": "0" * 32},
                              "shim": {"/usr/bin/app2": "1" * 32}},
                   diversions="/usr/bin/app2\n/usr/bin/app2.real\nshim\n")
    index = DpkgIndex(admin, root=str(real))
    owner = index.owner(str(app))
    assert owner is not None and (owner.package, owner.list_name) == ("app", "app:amd64")
    assert index.verify(owner, str(app)).verified is True
    assert index.owner("/usr/bin/app") is None  # outside the root
    (real / "usr" / "bin" / "tool").write_bytes(b"x")
    tool = index.owner(str(real / "usr" / "bin" / "tool"))  # listed as /bin/tool (usrmerge)
    assert tool is not None and tool.package == "tool"
    check = index.verify(tool, str(real / "usr" / "bin" / "tool"))
    assert check.verified is None and "records no checksum" in check.why
    gone = index.owner(str(real / "usr" / "bin" / "gone"))
    assert gone is not None and index.verify(gone, "/nonexistent").verified is None
    # A diverted file is the original package's, summed under its original path.
    root_index = DpkgIndex(admin)
    moved = root_index.owner("/usr/bin/app2.real")
    assert moved is None  # only shim lists app2: nobody else owns the moved copy
    app.write_bytes(b"\x7fELF tampered")
    bad = index.verify(owner, str(app))
    assert bad.verified is False and "the package records" in bad.why
    generation = index.generation
    assert index.refresh() and index.generation == generation  # nothing changed: no rebuild
    _admin(tmp_path, {"new": {"/usr/bin/new": "2" * 32}})
    (real / "usr" / "bin" / "new").write_bytes(b"n")
    found = index.owner(str(real / "usr" / "bin" / "new"))
    assert found is not None and found.package == "new" and index.generation == generation + 1
    assert index.packages == 4
    assert DpkgIndex(tmp_path / "nothing").owner("/usr/bin/app") is None


def test_md5_file_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert md5_file(str(f)) == hashlib.md5(b"abc", usedforsecurity=False).hexdigest()
    assert md5_file(str(f), limit=2) is None
    assert md5_file(str(tmp_path)) is None and md5_file("/nonexistent") is None
    os.mkfifo(tmp_path / "fifo")
    assert md5_file(str(tmp_path / "fifo")) is None  # never hangs on a FIFO
    assert md5_file("a\x00b") is None


def test_the_resolver_caches_by_file_identity_and_sees_a_replaced_file(tmp_path: Path) -> None:
    real = tmp_path / "root"
    (real / "usr" / "bin").mkdir(parents=True)
    exe = real / "usr" / "bin" / "cam"
    shutil.copyfile(__file__, exe)
    md5 = md5_file(str(exe))
    admin = _admin(tmp_path, {"cam": {"/usr/bin/cam": md5}})
    r = LinuxOriginResolver(admin, root=str(real))
    assert r.cached(None, str(exe)) is None  # nothing read yet
    first = r.origin(None, str(exe))
    assert first == ExeOrigin(OriginKind.DEB, "cam", True)
    assert r.cached(None, str(exe)) == first
    exe.write_bytes(b"replaced, same path")  # new size and mtime: a new identity
    again = r.origin(None, str(exe))
    assert again is not None and again.verified is False
    assert again.problem() is not None and "no longer matches" in again.problem()
    loose = tmp_path / "loose"
    loose.write_bytes(b"mine")
    assert r.origin(None, str(loose)) == ExeOrigin(
        OriginKind.LOCAL, str(loose), None, hashlib.sha256(b"mine").hexdigest())
    assert r.origin(None, "relative/path") is None and r.origin(None, "/nonexistent") is None
    assert r.origin(None, str(loose) + " (deleted)") is not None
