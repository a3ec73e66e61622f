"""The origin resolver's edges, on real files: what it cannot examine is None, never a
guess; a path given by hand is followed to the file it names; a "(deleted)" suffix is the
kernel's, not the file's name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from camguard.core.origin import OriginKind
from camguard.platform.linux.origin import LinuxOriginResolver


def resolver(tmp_path: Path) -> LinuxOriginResolver:
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "status").write_text("")
    return LinuxOriginResolver(admin, root=str(tmp_path))  # no package owns anything here


def test_what_cannot_be_examined_is_none(tmp_path: Path) -> None:
    r = resolver(tmp_path)
    assert r.origin(None, "relative/app") is None  # not an absolute path
    assert r.origin(None, str(tmp_path / "missing")) is None  # nothing there
    assert r.origin(None, str(tmp_path)) is None  # a folder has no digest
    assert r.cached(None, str(tmp_path / "missing")) is None


def test_a_path_given_by_hand_is_followed_and_the_deleted_suffix_dropped(
        tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.write_bytes(b"\x7fELF not really")
    link = tmp_path / "link"
    link.symlink_to(app)
    r = resolver(tmp_path)
    assert r.cached(None, str(link)) is None  # never looked at: no file read on this path
    got = r.origin(None, str(link))
    assert got is not None and got.kind is OriginKind.LOCAL
    assert got.name == str(app)  # the file, not the link
    assert got.detail == hashlib.sha256(app.read_bytes()).hexdigest()
    again = r.origin(None, f"{app} (deleted)")
    assert again == got
    assert r.cached(None, str(app)) == got  # now known without reading the file
