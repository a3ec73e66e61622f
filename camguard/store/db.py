"""The SQLite database file: private modes, WAL, migrations, and recovery from damage.

One :class:`Database` owns one connection. The history store and the allow list share it.
A damaged file never stops camguard: it is moved aside (kept, so nothing is lost), a fresh
one is started, and :attr:`Database.warnings` says what happened so the UI can show it.
Those warnings are not logged here: the owner says them once (the service and the tray in
their log, a command on stderr), never twice.

A read-only command opens with ``read_only=True``: the file is opened through SQLite's
``mode=ro`` URI and never created, moved, migrated or written; a file that is not a usable
camguard database raises :class:`DatabaseUnreadable` instead of being "recovered".
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from camguard.core.clock import Clock
from camguard.store import paths
from camguard.store.migrations import (
    MIGRATIONS,
    Migration,
    SchemaTooNew,
    migrate,
    schema_version,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Primary result codes (https://www.sqlite.org/rescode.html); Python 3.11 exposes the
# extended code as ``sqlite_errorcode``, whose low byte is the primary one.
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26

BUSY_TIMEOUT_S = 5.0

# WAL header magic numbers; the low bit says the checksum byte order
# (https://www.sqlite.org/fileformat2.html#walformat).
_WAL_MAGICS = (0x377F0682, 0x377F0683)
_WAL_HEADER = 32


def default_path() -> Path:
    """``history.sqlite3`` in the user data folder (``CAMGUARD_DATA_DIR`` overrides)."""
    return paths.history_file()


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


class _Damaged(Exception):
    """The file failed to open or failed its check: move it aside."""


class DatabaseUnreadable(Exception):
    """A file opened read-only is not a camguard database this version can read (it was
    left exactly as it was)."""


class Database:
    """One SQLite connection, serialised by a lock; safe to call from any thread.

    Threads: every method may be called from any thread (the connection is opened with
    ``check_same_thread=False`` and guarded by a re-entrant lock). A call blocks for as long
    as its statements take (well under a millisecond for one session row) and at most
    ``BUSY_TIMEOUT_S`` when another process holds the write lock. Opening runs
    ``PRAGMA quick_check`` over the whole file: do it once, at start-up.

    ``path=None`` keeps everything in memory (tests, or a database that cannot be used).
    """

    def __init__(self, path: Path | None, clock: Clock, *,
                 migrations: Sequence[Migration] = MIGRATIONS, read_only: bool = False) -> None:
        self.path = path
        #: Opened for a read-only command: never written, moved or created.
        self.read_only = read_only
        self._clock = clock
        self._migrations = migrations
        self._lock = threading.RLock()
        #: Bumped each time a damaged file is replaced: ids handed out before are stale.
        self.generation = 0
        #: Human-readable problems since opening (damaged file moved aside, memory only).
        self.warnings: list[str] = []
        #: Files moved aside because they were damaged (kept for the user, never deleted).
        self.moved_aside: list[Path] = []
        self.in_memory = False
        self._conn = self._connect()

    # -- public ------------------------------------------------------------------------
    @property
    def warning(self) -> str | None:
        """All warnings as one line for a status bar, or None when all is well."""
        return "; ".join(self.warnings) or None

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection (no explicit transaction)."""
        return self._run(fn, write=False)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back if it raises)."""
        return self._run(fn, write=True)

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` rows: ``["ok"]`` for a sound database."""
        return self.read(lambda c: [str(r[0]) for r in c.execute("PRAGMA integrity_check")])

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                log.debug("closing the database failed", exc_info=True)

    # -- running statements ------------------------------------------------------------
    def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        if write and self.read_only:
            raise sqlite3.OperationalError("the database was opened read-only")
        with self._lock:
            for attempt in (1, 2):
                conn = self._conn
                try:
                    if not write:
                        return fn(conn)
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    return result
                except sqlite3.DatabaseError as exc:
                    # Damage found while running (a disk error, someone wrote over the file):
                    # keep the bad file, start afresh and try this one call once more.
                    if (attempt == 2 or self.in_memory or self.read_only
                            or not is_corruption(exc)):
                        raise
                    self._replace_damaged(str(exc))
            raise AssertionError("unreachable")  # pragma: no cover

    def _replace_damaged(self, reason: str) -> None:
        log.warning("history database damaged while in use: %s", reason)
        self.close()
        assert self.path is not None  # noqa: S101 - in-memory databases are not retried
        try:
            self._move_aside(self.path, reason)
        except OSError as exc:
            self._conn = self._memory(f"cannot move the damaged {self.path} aside ({exc}); "
                                      "history is kept in memory only")
        else:
            self._conn = self._connect()
        self.generation += 1

    # -- opening -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            return self._memory()
        if self.read_only:
            return self._open_read_only(self.path)
        try:
            try:
                return self._open_file(self.path)
            except _Damaged as exc:
                self._move_aside(self.path, str(exc))
                return self._open_file(self.path)
        except SchemaTooNew as exc:
            return self._memory(f"{self.path} was written by a newer camguard ({exc}); it is "
                                "left untouched and history is kept in memory only")
        except (OSError, sqlite3.Error, _Damaged) as exc:
            return self._memory(f"cannot use {self.path} ({exc}); history is kept in memory "
                                "only")

    def _memory(self, why: str | None = None) -> sqlite3.Connection:
        if why is not None:
            self.warnings.append(why)  # said once, by the owner (module note)
        self.in_memory = True
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        migrate(conn, self._migrations)
        return conn

    def _open_file(self, path: Path) -> sqlite3.Connection:
        paths.private_dir(path.parent)
        self._keep_damaged_wal(path)
        _create_private(path)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts on power loss; it may lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            row = conn.execute("PRAGMA quick_check(1)").fetchone()
            if row is None or row[0] != "ok":
                raise _Damaged(f"quick_check: {row[0] if row else 'no answer'}")
            migrate(conn, self._migrations)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if is_corruption(exc):
                raise _Damaged(str(exc)) from exc
            raise
        except BaseException:
            conn.close()
            raise
        _tighten(path)
        return conn

    def _open_read_only(self, path: Path) -> sqlite3.Connection:
        """``path`` opened with ``mode=ro``; raises :class:`DatabaseUnreadable` for a file
        that is not a camguard database (or a damaged, or a newer one).

        An older schema is read from a copy in memory, migrated there: the file keeps its
        version until camguard itself (a writer) opens it.
        """
        if not path.is_file():
            raise DatabaseUnreadable(f"{path} is not a file")
        # The URI names the file exactly: '?' and '#' in a name would start its query part.
        uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            version = schema_version(conn)
            tables = {str(r[0]) for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            latest = self._migrations[-1].version if self._migrations else 0
            if version == 0 or "sessions" not in tables:
                raise DatabaseUnreadable("not a camguard history database (no sessions in it)")
            if version > latest:
                raise DatabaseUnreadable(f"written by a newer camguard (schema version "
                                         f"{version}; this one reads up to {latest})")
            row = conn.execute("PRAGMA quick_check(1)").fetchone()
            if row is None or row[0] != "ok":
                raise DatabaseUnreadable(f"damaged ({row[0] if row else 'no answer'})")
            if version < latest:
                copy = sqlite3.connect(":memory:", isolation_level=None,
                                       check_same_thread=False)
                conn.backup(copy)
                conn.close()
                conn = copy
                migrate(conn, self._migrations)
            return conn
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            why = " ".join(str(exc).split())[:200]
            if is_corruption(exc):
                raise DatabaseUnreadable(f"not a camguard history database ({why})") from exc
            raise DatabaseUnreadable(f"cannot read it ({why})") from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise

    def _move_aside(self, path: Path, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock.now()))
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        # The -wal and -shm files travel with the database under the names SQLite expects
        # for the new name, so the kept copy opens with everything it had.
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.exists():
                os.replace(src, f"{target}{suffix}")
        self.moved_aside.append(target)
        reason = " ".join(reason.split())[:200]  # quick_check answers span several lines
        why = (f"the history database {path} was damaged ({reason}); it was kept as "
               f"{target} and a new one was started")
        self.warnings.append(why)  # said once, by the owner (module note)

    def _keep_damaged_wal(self, path: Path) -> None:
        """Copy a WAL whose header is garbage aside before SQLite discards it.

        SQLite ignores a WAL with a bad header (wal.c, walIndexRecover) and later overwrites
        it, so commits not yet copied into the database would vanish without a trace. A
        torn last frame is normal after a crash and is not reported: SQLite stops at the
        first frame whose checksum fails, keeping every committed transaction before it.
        """
        wal = Path(f"{path}-wal")
        try:
            with wal.open("rb") as f:
                head = f.read(_WAL_HEADER)
        except OSError:
            return
        if len(head) < _WAL_HEADER or _wal_header_ok(head):
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock.now()))
        kept = path.with_name(f"{path.name}.corrupt-{stamp}.wal")
        fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out, wal.open("rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        self.moved_aside.append(kept)
        why = (f"the history write-ahead log {wal} was damaged; a copy was kept as {kept} "
               "(recent sessions may be missing)")
        self.warnings.append(why)  # said once, by the owner (module note)


def _wal_header_ok(head: bytes) -> bool:
    """Check the WAL header magic and checksum (fileformat2.html, "Checksum Algorithm")."""
    magic = struct.unpack(">I", head[:4])[0]
    if magic not in _WAL_MAGICS:
        return False
    order = ">" if magic & 1 else "<"
    words = struct.unpack(f"{order}6I", head[:24])
    s1 = s2 = 0
    for i in range(0, 6, 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return struct.unpack(">2I", head[24:32]) == (s1, s2)


def _create_private(path: Path) -> None:
    """Create ``path`` as 0600 before SQLite sees it (SQLite would create it 0644 & ~umask)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _tighten(path: Path) -> None:
    """Make sure the -wal and -shm files are 0600 too.

    SQLite already creates them with the database file's permissions (os_unix.c,
    findCreateFileMode), so this only repairs files left by an older or foreign writer.
    """
    for suffix in ("-wal", "-shm"):
        side = f"{path}{suffix}"
        try:
            if os.stat(side, follow_symlinks=False).st_mode & 0o077:
                os.chmod(side, 0o600)
        except FileNotFoundError:
            continue
        except OSError:
            log.warning("cannot make %s private", side, exc_info=True)
