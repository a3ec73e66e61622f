"""Which Debian package owns a file, from dpkg's database read directly (no ``dpkg -S``).

dpkg keeps, per installed package, ``info/<package>[:<arch>].list`` (every path it
installed) and ``info/<package>[:<arch>].md5sums`` (``<md5>  <path without the leading
/>``). :class:`DpkgIndex` reads every ``.list`` once and reads a package's ``.md5sums``
only when a file of it is looked up; both are read again when
dpkg changed its database (the modification time of ``info/``, ``status`` or
``diversions``: dpkg renames new files into ``info/`` and rewrites ``status`` on every
install, upgrade and removal). Diverted files (``dpkg-divert``) and the merged ``/usr``
(``/bin`` -> ``/usr/bin``) are followed.

The first lookups search the ``.list`` files' bytes for the path (~10 ms to read them all,
~3 ms a search); from the ``INDEX_AFTER``-th lookup on, one path -> package table is built
from them (~60 ms, then a dict lookup each). A command that names one or two holders
(``camguard status``) never pays for the table; the service and the tray soon do, once
(issue 16). Both ways give the same owners in the same order.

Thread-safe: one lock around (re)building; lookups after that only read dicts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ADMIN_DIR = Path("/var/lib/dpkg")
# A file bigger than this is not md5-summed (its package stays known, unverified).
MAX_VERIFY_BYTES = 1 << 30
_CHUNK = 1 << 20
# The top folders a merged /usr turns into symlinks (usrmerge); a package may still list the
# old path.
_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Lookups answered by searching the .list files before the table is built.
INDEX_AFTER = 8


@dataclass(frozen=True, slots=True)
class Owner:
    """The package that owns a path, and the path its ``.md5sums`` uses for the file (not
    the same for a diverted file)."""

    package: str  # without the ":<arch>" qualifier
    list_name: str  # the info file's stem, with the qualifier when dpkg wrote one
    listed_path: str


@dataclass(frozen=True, slots=True)
class Check:
    """What comparing a file with its package's md5sum found: True (matches), False (does
    not: ``why``), None (no md5sum recorded, or the file could not be read)."""

    verified: bool | None
    why: str = ""


class DpkgIndex:
    """Path -> owning package over a dpkg admin directory (``/var/lib/dpkg`` or a copy).

    ``root``: where dpkg installed the files, as ``dpkg --root`` (a chroot, a test's
    throwaway tree): a path under it is looked up as the package lists it.
    """

    def __init__(self, admin_dir: Path | str = DEFAULT_ADMIN_DIR, root: str = "/") -> None:
        self.admin_dir = Path(admin_dir)
        self.root = root.rstrip("/")
        self._info = self.admin_dir / "info"
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._owners: dict[str, str | list[str]] | None = {}
        # (info file stem, its .list file's bytes) in directory order, until the table is
        # built; lookups so far.
        self._lists: list[tuple[str, bytes]] = []
        self._lookups = 0
        self._diverted_from: dict[str, str] = {}  # path -> diverting package (":" = local)
        self._diverted_to: dict[str, str] = {}  # new path -> original path
        self._md5: dict[str, dict[str, str]] = {}
        self.generation = 0  # bumped on every rebuild (part of callers' cache keys)
        self.packages = 0

    # -- freshness ---------------------------------------------------------------------
    def _current_stamp(self) -> tuple[int, ...] | None:
        stamp: list[int] = []
        for p in (self._info, self.admin_dir / "status", self.admin_dir / "diversions"):
            try:
                st = os.stat(p)
            except OSError:
                if p == self._info:
                    return None  # no dpkg here
                stamp += [0, 0]
                continue
            stamp += [st.st_mtime_ns, st.st_ino]
        return tuple(stamp)

    def refresh(self) -> bool:
        """Read the database again if dpkg changed it since the last read (two or three
        ``stat`` calls when it did not). Returns whether an index is in place."""
        stamp = self._current_stamp()
        if stamp is not None and stamp == self._stamp:
            return True
        with self._lock:
            stamp = self._current_stamp()
            if stamp is None:
                self._owners, self._lists, self._md5, self._stamp = {}, [], {}, None
                return False
            if stamp != self._stamp:
                self._build()
                self._stamp = stamp
        return True

    def _build(self) -> None:
        """Read every ``.list`` file (the table is built later, if ever: _owner_stems)."""
        lists: list[tuple[str, bytes]] = []
        try:
            entries = list(os.scandir(self._info))
        except OSError as exc:
            log.warning("cannot read dpkg's database %s: %s", self._info, exc)
            entries = []
        for entry in entries:
            name = entry.name
            if not name.endswith(".list"):
                continue
            try:
                with open(entry.path, "rb") as f:
                    lists.append((name[:-5], f.read()))
            except OSError:
                continue
        self._lists, self._owners, self._lookups = lists, None, 0
        self._diverted_from, self._diverted_to = self._diversions()
        self._md5 = {}
        self.packages = len(lists)
        self.generation += 1

    def _owner_stems(self, path: str) -> tuple[str, ...]:
        """The info file stems that list ``path``, in directory order."""
        with self._lock:
            owners = self._owners
            if owners is None:
                self._lookups += 1
                if self._lookups < INDEX_AFTER:
                    # The bytes of ``path`` in a file are a superset of the files that list
                    # it as a line; splitlines() on those few confirms, as the table would.
                    needle = os.fsencode(path)
                    return tuple(stem for stem, raw in self._lists
                                 if needle in raw and path in os.fsdecode(raw).splitlines())
                owners = self._owners = _table(self._lists)
                self._lists = []
        return _as_tuple(owners.get(path))

    def _diversions(self) -> tuple[dict[str, str], dict[str, str]]:
        # Three lines per diversion: the original path, where it was moved, the package
        # that diverted it (":" for a local diversion).
        try:
            lines = (self.admin_dir / "diversions").read_bytes().decode(
                "utf-8", "surrogateescape").splitlines()
        except OSError:
            return {}, {}
        by_from: dict[str, str] = {}
        by_to: dict[str, str] = {}
        for i in range(0, len(lines) - 2, 3):
            original, moved, package = lines[i], lines[i + 1], lines[i + 2]
            by_from[original] = package
            by_to[moved] = original
        return by_from, by_to

    # -- lookups -------------------------------------------------------------------------
    def owner(self, path: str) -> Owner | None:
        """The package owning the file at ``path`` (an absolute, resolved path), or None."""
        if not self.refresh():
            return None
        if self.root:
            if not path.startswith(self.root + "/"):
                return None
            path = path[len(self.root):]
        for candidate in _aliases(path):
            found = self._owner_of(candidate)
            if found is not None:
                return found
        return None

    def _owner_of(self, path: str) -> Owner | None:
        original = self._diverted_to.get(path)
        if original is not None:
            # A diverted file: the package that shipped it lists the original path, and
            # the diverting package does not own this copy.
            diverter = self._diverted_from.get(original, ":")
            stems = [s for s in self._owner_stems(original)
                     if _package(s) != diverter]
            return Owner(_package(stems[0]), stems[0], original) if stems else None
        stems = list(self._owner_stems(path))
        if not stems:
            return None
        diverting = self._diverted_from.get(path)
        if diverting is not None and diverting != ":":
            # The file now at the original path is the diverting package's.
            theirs = [s for s in stems if _package(s) == diverting]
            stems = theirs or stems
        return Owner(_package(stems[0]), stems[0], path)

    def md5sum(self, owner: Owner) -> str | None:
        """The md5 dpkg recorded for the owner's file; None when it recorded none."""
        sums = self._md5.get(owner.list_name)
        if sums is None:
            sums = {}
            try:
                raw = (self._info / f"{owner.list_name}.md5sums").read_bytes()
            except OSError:
                raw = b""
            for line in os.fsdecode(raw).splitlines():
                digest, _sep, rel = line.partition("  ")
                if len(digest) == 32 and rel:
                    sums["/" + rel.lstrip("/")] = digest.lower()
            self._md5[owner.list_name] = sums
        return sums.get(owner.listed_path)

    def verify(self, owner: Owner, opened: str) -> Check:
        """Compare the file (opened through ``opened``: its path, or ``/proc/PID/exe``)
        with the package's md5sum."""
        want = self.md5sum(owner)
        if want is None:
            return Check(None, f"the package {owner.package} records no checksum for it")
        got = md5_file(opened)
        if got is None:
            return Check(None, "the file could not be read to check it")
        if got != want:
            return Check(False, f"md5 {got[:12]}…, the package records {want[:12]}…")
        return Check(True)


def md5_file(path: str, limit: int = MAX_VERIFY_BYTES) -> str | None:
    """Hex md5 of the regular file at ``path``; None if unreadable, not a file or too big.
    (md5 because that is what dpkg records; it detects a changed file, it does not resist
    someone who can already write to /usr.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        h = hashlib.md5(usedforsecurity=False)
        total = 0
        while chunk := os.read(fd, _CHUNK):
            total += len(chunk)
            if total > limit:
                return None
            h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def _aliases(path: str) -> list[str]:
    out = [path]
    parts = path.split("/", 3)  # "", "usr", "bin", rest
    if len(parts) >= 3 and parts[1] == "usr" and parts[2] in _MERGED:
        out.append("/" + "/".join(parts[2:]))
    elif len(parts) >= 2 and parts[1] in _MERGED:
        out.append("/usr" + path)
    return out


def _table(lists: list[tuple[str, bytes]]) -> dict[str, str | list[str]]:
    """path -> the info file stem (or stems, in directory order) that lists it."""
    owners: dict[str, str | list[str]] = {}
    for stem, raw in lists:
        mine: dict[str, str | list[str]] = dict.fromkeys(os.fsdecode(raw).splitlines(), stem)
        # Paths two packages list (folders, mostly; Multi-Arch: same files): both.
        for path in mine.keys() & owners.keys():
            had = owners[path]
            if isinstance(had, list):
                had.append(stem)
                mine[path] = had
            else:
                mine[path] = [had, stem]
        owners.update(mine)
    return owners


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _package(stem: str) -> str:
    return stem.partition(":")[0]
