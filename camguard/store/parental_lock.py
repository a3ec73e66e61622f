"""The parental lock: a password (scrypt hash, never in clear) that guards unblock, pause, quit
and rule or settings changes, with an exponential back-off on wrong guesses that survives
restarts.

The file (``lock.json``, 0600) holds the salt, the hash, the scrypt cost and the back-off
state. It lives in the user's config folder for a tray or CLI without the service (where
the user could delete it: the lock then only slows down a casual attempt), and in the
service's root-owned state folder when the system service runs (``/var/lib/camguard``),
where an unprivileged account cannot touch it.

Back-off: after the n-th wrong password in a row, no password (not even the right one) is
tried for ``base * 2**(n-1)`` seconds, capped at ``cap``. It is kept per account (``who``:
the caller's uid, as the service knows it from the socket's peer credentials), so a child's
wrong guesses never lock the parent out; a tray or CLI without the service has one account
(``who=None``). Wall time is used because the waiting must survive a restart of camguard; a
wall clock far ahead of the stored time (it was set back) never makes a wait longer than
``cap``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import logging
import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camguard.core.clock import Clock
from camguard.store import paths
from camguard.store.files import exclusive, write_private

log = logging.getLogger(__name__)

FILE_NAME = "lock.json"
FORMAT_VERSION = 1
# hashlib.scrypt's recommended interactive cost (RFC 7914 section 2): about 16 MB and
# 50 ms per check, so guessing is slow even for whoever copies the file.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_PASSWORD_CHARS = 1024
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
# Back-off entries kept (one per account that guessed wrong); uids are accounts on this
# machine, so the bound is only against a tampered file.
MAX_ACCOUNTS = 4096
LOCAL = "local"  # the one account of a tray or CLI without the service


class LockOutcome(enum.StrEnum):
    OK = "ok"  # right password, or no lock set
    WRONG = "wrong"  # wrong password: wait ``retry_after`` seconds before the next try
    LOCKED_OUT = "locked-out"  # still waiting after earlier wrong passwords: not even tried


@dataclass(frozen=True, slots=True)
class LockCheck:
    status: LockOutcome
    retry_after: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is LockOutcome.OK


class LockFileError(ValueError):
    """The lock file exists but is not one this version understands."""


@dataclass(frozen=True, slots=True)
class _Backoff:
    failures: int = 0
    next_allowed: float = 0.0


@dataclass(frozen=True, slots=True)
class _State:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    # Per account (see the module docstring): str(uid), or LOCAL.
    backoff: tuple[tuple[str, _Backoff], ...] = ()

    def of(self, key: str) -> _Backoff:
        return dict(self.backoff).get(key, _Backoff())

    def with_backoff(self, key: str, entry: _Backoff | None) -> _State:
        table = dict(self.backoff)
        table.pop(key, None)
        if entry is not None:
            table[key] = entry
        kept = sorted(table.items(), key=lambda kv: kv[1].next_allowed)[-MAX_ACCOUNTS:]
        return _State(self.salt, self.digest, self.n, self.r, self.p, tuple(sorted(kept)))


def _key(who: int | None) -> str:
    return LOCAL if who is None else str(int(who))


def default_path() -> Path:
    return paths.config_dir() / FILE_NAME


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # surrogatepass: a password read from a terminal with undecodable bytes still hashes.
    secret = password.encode("utf-8", "surrogatepass")
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=HASH_BYTES)


class LockGuard:
    """Checks and changes the lock password. Thread-safe and multi-process safe: every call
    takes an exclusive ``flock`` on ``lock.json.lock`` while it reads and writes the state.

    Each call may block for the scrypt time (about 50 ms) and the file lock.
    """

    def __init__(self, path: Path, clock: Clock, *, base: float = BACKOFF_BASE,
                 cap: float = BACKOFF_CAP, report: bool = True) -> None:
        # report: log each wrong password; false where the caller prints the refusal (a
        # command), so that it is said once.
        self.path = path
        self._report = report
        self._clock = clock
        self._base = base
        self._cap = cap

    # -- queries -------------------------------------------------------------------------------
    def is_set(self) -> bool:
        """True when a password is set (a damaged file counts as set: fail closed)."""
        try:
            return self._load() is not None
        except LockFileError:
            return True

    def status(self, who: int | None = None) -> dict[str, Any]:
        """``set``, ``failures`` and ``retry_after`` (seconds; 0 when a try is allowed now)
        for the account ``who``."""
        with self._locked():
            try:
                state = self._load()
            except LockFileError as exc:
                return {"set": True, "failures": 0, "retry_after": 0.0, "damaged": str(exc)}
        if state is None:
            return {"set": False, "failures": 0, "retry_after": 0.0, "damaged": None}
        entry = state.of(_key(who))
        return {"set": True, "failures": entry.failures,
                "retry_after": round(self._wait(entry), 3), "damaged": None}

    # -- checking ------------------------------------------------------------------------------
    def check(self, password: str | None, who: int | None = None) -> LockCheck:
        """OK when no lock is set or ``password`` is right; otherwise WRONG (with the wait it
        caused) or LOCKED_OUT (an earlier wrong password of the same account ``who`` has
        its wait not over)."""
        with self._locked():
            try:
                state = self._load()
            except LockFileError as exc:
                return LockCheck(LockOutcome.LOCKED_OUT, self._cap,
                                 f"the lock file is damaged ({exc}); root can remove "
                                 f"{self.path} to clear the lock")
            if state is None:
                return LockCheck(LockOutcome.OK)
            return self._check_locked(state, password, _key(who))

    def _check_locked(self, state: _State, password: str | None, key: str) -> LockCheck:
        entry = state.of(key)
        wait = self._wait(entry)
        if wait > 0:
            return LockCheck(LockOutcome.LOCKED_OUT, wait,
                             f"too many wrong passwords; try again in {math.ceil(wait)} s")
        if password is None:
            return LockCheck(LockOutcome.WRONG, 0.0, "the parental lock needs its password")
        right = len(password) <= MAX_PASSWORD_CHARS and hmac.compare_digest(
            _derive(password, state.salt, state.n, state.r, state.p), state.digest)
        now = self._clock.now()
        if right:
            if entry.failures:
                self._save(state.with_backoff(key, None))
            return LockCheck(LockOutcome.OK)
        failures = entry.failures + 1
        delay = min(self._cap, self._base * 2.0 ** min(failures - 1, 62))
        self._save(state.with_backoff(key, _Backoff(failures, now + delay)))
        if self._report:
            log.warning("wrong parental-lock password (%d in a row from %s); next try in "
                        "%.0f s", failures, "this account" if key == LOCAL else f"uid {key}",
                        delay)
        return LockCheck(LockOutcome.WRONG, delay,
                         f"wrong password; try again in {math.ceil(delay)} s")

    # -- changing ------------------------------------------------------------------------------
    def set_password(self, new: str, current: str | None = None, *, force: bool = False,
                     who: int | None = None) -> LockCheck:
        """Set (or change, with the ``current`` password) the lock password. ``force``
        skips the current password: for root, who could rewrite the file anyway."""
        if not new or len(new) > MAX_PASSWORD_CHARS or "\x00" in new:
            raise ValueError(f"a password must be 1 to {MAX_PASSWORD_CHARS} characters")
        with self._locked():
            answer = LockCheck(LockOutcome.OK) if force else self._current_ok(current, who)
            if not answer.ok:
                return answer
            salt = secrets.token_bytes(SALT_BYTES)
            self._save(_State(salt, _derive(new, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)))
        log.info("parental-lock password set")
        return LockCheck(LockOutcome.OK, 0.0, "the parental lock is set")

    def clear(self, current: str | None, *, force: bool = False, who: int | None = None
              ) -> LockCheck:
        """Remove the lock (needs the ``current`` password unless ``force``: root)."""
        with self._locked():
            answer = LockCheck(LockOutcome.OK) if force else self._current_ok(current, who)
            if not answer.ok:
                return answer
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        log.info("parental lock cleared")
        return LockCheck(LockOutcome.OK, 0.0, "the parental lock is off")

    def _current_ok(self, current: str | None, who: int | None) -> LockCheck:
        try:
            state = self._load()
        except LockFileError as exc:
            return LockCheck(LockOutcome.LOCKED_OUT, self._cap,
                             f"the lock file is damaged ({exc}); root can remove {self.path}")
        return LockCheck(LockOutcome.OK) if state is None else \
            self._check_locked(state, current, _key(who))

    # -- the file ------------------------------------------------------------------------------
    def _wait(self, entry: _Backoff) -> float:
        left = entry.next_allowed - self._clock.now()
        return max(0.0, min(left, self._cap))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive(self.path):
            yield

    def _load(self) -> _State | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LockFileError(f"cannot read it: {exc.strerror or exc}") from exc
        try:
            return _decode(raw)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise LockFileError(str(exc)[:200]) from exc

    def _save(self, state: _State) -> None:
        doc = {"version": FORMAT_VERSION, "kdf": "scrypt", "n": state.n, "r": state.r,
               "p": state.p, "salt": state.salt.hex(), "hash": state.digest.hex(),
               # The local account's count stays where every version kept it; the others'
               # are by uid.
               "failures": state.of(LOCAL).failures,
               "next_allowed": state.of(LOCAL).next_allowed,
               "backoff": {k: {"failures": e.failures, "next_allowed": e.next_allowed}
                           for k, e in state.backoff if k != LOCAL}}
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("ascii")
        write_private(self.path, data)


def _decode(raw: bytes) -> _State:
    doc = json.loads(raw.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION \
            or doc.get("kdf") != "scrypt":
        raise LockFileError("not a version-1 scrypt lock file")
    n, r, p = (doc[k] for k in ("n", "r", "p"))
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (n, r, p)):
        raise LockFileError("bad numbers in the lock file")
    # Bounds keep a tampered file from making every check cost gigabytes or forever.
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise LockFileError("scrypt cost or back-off out of range")
    salt, digest = bytes.fromhex(doc["salt"]), bytes.fromhex(doc["hash"])
    if len(salt) < 8 or len(digest) != HASH_BYTES:
        raise LockFileError("bad salt or hash length")
    table = doc.get("backoff", {})
    if not isinstance(table, dict) or len(table) > MAX_ACCOUNTS:
        raise LockFileError("bad back-off table in the lock file")
    entries = {str(k): _backoff(v) for k, v in table.items()}
    if any(not (k.isdigit() and len(k) <= 10) for k in entries):
        raise LockFileError("bad account in the lock file's back-off table")
    if "failures" in doc or "next_allowed" in doc:
        # The local account's (before the back-off was per account: everyone's).
        entries[LOCAL] = _backoff(doc)
    return _State(salt, digest, n, r, p, tuple(sorted(entries.items())))


def _backoff(raw: Any) -> _Backoff:
    if not isinstance(raw, dict):
        raise LockFileError("bad back-off entry in the lock file")
    failures, next_allowed = raw.get("failures", 0), raw.get("next_allowed", 0.0)
    if isinstance(failures, bool) or not isinstance(failures, int) \
            or isinstance(next_allowed, bool) or not isinstance(next_allowed, int | float):
        raise LockFileError("bad numbers in the lock file")
    if failures < 0 or not math.isfinite(next_allowed):
        raise LockFileError("scrypt cost or back-off out of range")
    return _Backoff(failures, float(next_allowed))


Ask = Callable[[], str | None]


def require_unlock(guard: LockGuard, ask: Ask) -> LockCheck:
    """OK at once when no lock is set; otherwise ``ask()`` for the password (None: the person
    gave up) and check it. A lock-out is reported before asking, so nobody types a password
    that would not even be tried."""
    if not guard.is_set():
        return LockCheck(LockOutcome.OK)
    pending = guard.status()
    if pending["retry_after"] > 0:
        return guard.check(None)
    password = ask()
    if password is None:
        return LockCheck(LockOutcome.WRONG, 0.0, "no password given")
    return guard.check(password)
