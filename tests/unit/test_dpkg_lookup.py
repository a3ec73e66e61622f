"""dpkg lookups (platform/linux/dpkg.py) give the same owners whether they search the
``.list`` files (the first lookups: what a one-shot ``camguard status`` does) or use the
path -> package table built after INDEX_AFTER lookups (the service, the tray): issue 16."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camguard.platform.linux import dpkg
from camguard.platform.linux.dpkg import DEFAULT_ADMIN_DIR, INDEX_AFTER, DpkgIndex

# Stems in the order they are written; dpkg's own order is the directory's (scandir), which
# both ways read in.
LISTS: dict[str, bytes] = {
    "app:amd64": b"/.\n/usr\n/usr/bin\n/usr/bin/app\n/usr/share/doc/app\n",
    "app:i386": b"/.\n/usr\n/usr/bin\n/usr/share/doc/app\n",  # Multi-Arch: same folder
    "tool": b"/.\n/bin\n/bin/tool\n/usr/bin/toolkit\n",  # /bin/tool: usrmerge alias
    "shim": b"/.\n/usr/bin/app2\n",
    "odd": (b"/.\n/usr/bin/line\xc2\x85break\n/usr/bin/form\x0cfeed\n/usr/bin/bad\xff\xfe\n"
            b"/usr/bin/sub\n"),
    "prefix": b"/.\n/usr/bin/sub-more\n/usr/bin/subtle\n",  # bytes of /usr/bin/sub, no line
}
DIVERSIONS = "/usr/bin/app2\n/usr/bin/app2.real\nshim\n"
PATHS = ["/usr/bin/app", "/usr/share/doc/app", "/usr/bin", "/usr", "/usr/bin/tool",
         "/bin/tool", "/usr/bin/toolkit", "/usr/bin/app2", "/usr/bin/app2.real",
         "/usr/bin/line", "/usr/bin/line\x85break", "break", "/usr/bin/form", "feed",
         os.fsdecode(b"/usr/bin/bad\xff\xfe"), "/usr/bin/sub", "/usr/bin/su", "/nothing", "/"]


def admin(tmp_path: Path) -> Path:
    info = tmp_path / "dpkg" / "info"
    info.mkdir(parents=True)
    (tmp_path / "dpkg" / "status").write_text("")
    (tmp_path / "dpkg" / "diversions").write_text(DIVERSIONS)
    for stem, raw in LISTS.items():
        (info / f"{stem}.list").write_bytes(raw)
    return tmp_path / "dpkg"


def answers(index: DpkgIndex, paths: list[str]) -> list[object]:
    out: list[object] = []
    for path in paths:
        owner = index.owner(path)
        out.append(None if owner is None else (owner.package, owner.list_name,
                                               owner.listed_path))
    return out


def searched(index: DpkgIndex, paths: list[str]) -> list[object]:
    """Each path looked up while the index still searches (a fresh count every time)."""
    out: list[object] = []
    for path in paths:
        index.refresh()
        index._lookups = 0
        out += answers(index, [path])
        assert index._owners is None
    return out


def test_searching_and_the_table_give_the_same_owners(tmp_path: Path) -> None:
    root = admin(tmp_path)
    index = DpkgIndex(root)
    by_search = searched(index, PATHS)
    table = DpkgIndex(root)
    for _ in range(INDEX_AFTER):
        table.owner("/warm")  # the table from here on
    assert table._owners is not None
    assert answers(table, PATHS) == by_search
    # What the files say, spelled out: folders shared by two packages go to the first in
    # directory order; the moved copy of a diverted file is nobody's; a line cut by U+0085
    # is two lines (str.splitlines, as dpkg.py always split them); a prefix is no match.
    got = dict(zip(PATHS, by_search, strict=True))
    assert got["/bin/tool"] == ("tool", "tool", "/bin/tool")
    assert got["/usr/bin/tool"] == ("tool", "tool", "/bin/tool")
    assert got["/usr/bin/app2"] == ("shim", "shim", "/usr/bin/app2")
    assert got["/usr/bin/app2.real"] is None
    assert got["/usr/bin/line\x85break"] is None and got["break"] == ("odd", "odd", "break")
    assert got["/usr/bin/sub"] == ("odd", "odd", "/usr/bin/sub") and got["/usr/bin/su"] is None
    assert got[os.fsdecode(b"/usr/bin/bad\xff\xfe")] is not None
    assert index.packages == table.packages == len(LISTS)


def test_the_table_comes_after_index_after_lookups_and_a_change_starts_over(
        tmp_path: Path) -> None:
    root = admin(tmp_path)
    index = DpkgIndex(root)
    for n in range(1, INDEX_AFTER):
        assert index.owner("/usr/bin/app") is not None
        assert index._owners is None, n
    assert index.owner("/usr/bin/app") is not None
    assert index._owners is not None
    generation = index.generation
    (root / "info" / "new.list").write_bytes(b"/usr/bin/new\n")
    os.utime(root / "status", ns=(1, 1))  # dpkg rewrites status on every change
    new = index.owner("/usr/bin/new")
    assert new is not None and new.package == "new" and index.generation == generation + 1
    assert index._owners is None


@pytest.mark.skipif(not (DEFAULT_ADMIN_DIR / "info").is_dir(), reason="no dpkg here")
def test_on_this_machines_dpkg_database_both_ways_agree() -> None:
    files = sorted(p for p in (DEFAULT_ADMIN_DIR / "info").glob("*.list"))[:40]
    paths = ["/usr/bin/sleep", "/bin/sleep", "/usr/bin/python3", "/usr/bin/pw-dump",
             "/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/passwd", "/usr/bin/nonexistent"]
    for f in files:
        lines = f.read_bytes().splitlines()
        paths += [os.fsdecode(line) for line in lines[-2:]]
    index = DpkgIndex()
    by_search = searched(index, paths)
    table = DpkgIndex()
    table.refresh()
    table._owners = dpkg._table(table._lists)
    assert answers(table, paths) == by_search
    assert any(a is not None for a in by_search)
