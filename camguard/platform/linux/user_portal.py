"""The root service's view of each logged-in account's Flatpak location grants (issue 11).

The portal permission store is a session-bus service of each account
(``/run/user/UID/bus``); the root service has no session bus, and an account's bus admits
only that account. So, as for the microphone switch (user_mic.py), the service runs a short
child *as the account* (``camguard service-portal``: its uid, gid and groups, HOME and
XDG_RUNTIME_DIR) that reads the store through the same
:class:`~camguard.platform.linux.portal_location.PortalLocationSource` a user's camguard
runs and prints its coverage as one JSON line. Root reads at most 64 KB of it, for at most
a few seconds, and takes only well-typed, bounded fields: what the account's programs say
is the account's claim.

Only the coverage (each app's grant and last use) comes from here, asked when a status is
(at most once every :data:`CACHE_SECONDS`); a start of location by a Flatpak app is seen by
the service as the portal's GeoClue client (geoclue.py, bus monitor).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from camguard.core.coverage import AppGrant, Coverage, CoverageState
from camguard.core.models import SourceSnapshot
from camguard.core.text import literal
from camguard.platform.base import Wake
from camguard.platform.linux.user_mic import CHILD_OUTPUT_LIMIT, bounded_output, child_command
from camguard.store import paths

log = logging.getLogger(__name__)

COMMAND = "service-portal"  # the hidden camguard subcommand the child runs (cli/__init__.py)
CHILD_TIMEOUT = 5.0
CACHE_SECONDS = 10.0
MAX_ACCOUNTS = 32
MAX_APPS = 512
SOURCE = "portal"


def accounts_with_bus(root: Path) -> Iterator[tuple[int, Path]]:
    """``(uid, runtime folder)`` of each account whose runtime folder (its own, not
    writable by others) holds a session bus socket."""
    try:
        names = sorted(os.listdir(root), key=lambda n: (len(n), n))
    except OSError:
        return
    for name in names:
        if not name.isdigit() or name == "0":
            continue
        folder = root / name
        try:
            st = os.stat(folder, follow_symlinks=False)
            sst = os.stat(folder / "bus", follow_symlinks=False)
        except OSError:
            continue
        if (st.st_uid != int(name) or not stat.S_ISDIR(st.st_mode)
                or st.st_mode & stat.S_IWOTH or not stat.S_ISSOCK(sst.st_mode)):
            continue
        yield int(name), folder


def _text(value: object, limit: int) -> str:
    return literal(value, limit) if isinstance(value, str) else ""


def coverage_from_child(doc: object, source: str) -> Coverage:
    """The child's answer as one coverage entry; anything malformed is said, not used."""
    states = {s.value: s for s in CoverageState}
    if not isinstance(doc, dict) or doc.get("state") not in states:
        return Coverage("location", source, CoverageState.BLIND,
                        "the account's answer was not understood")
    apps = []
    raw = doc.get("apps")
    for a in (raw if isinstance(raw, list) else [])[:MAX_APPS]:
        if not isinstance(a, dict) or not isinstance(a.get("app_id"), str):
            continue
        used = a.get("last_used")
        when = float(used) if isinstance(used, int | float) and not isinstance(used, bool) \
            and 0 < used < 1e11 else None
        apps.append(AppGrant(_text(a["app_id"], 256), _text(a.get("access"), 64), when,
                             _text(a.get("note"), 300)))
    return Coverage("location", source, states[doc["state"]], _text(doc.get("reason"), 500),
                    tuple(apps))


def ask_account(uid: int, runtime: Path) -> Coverage:
    """The child's coverage for ``uid``'s portal permission store."""
    try:
        entry = pwd.getpwuid(uid)
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    except (KeyError, OSError) as exc:
        return Coverage("location", f"{SOURCE}:{uid}", CoverageState.BLIND,
                        f"uid {uid}: no such account ({exc})")
    source = f"{SOURCE}:{literal(entry.pw_name, 64)}"
    argv, env = child_command(entry, runtime, COMMAND,
                              {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus"})
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, user=uid, group=entry.pw_gid,
                                extra_groups=groups, env=env, cwd="/")
        out, err = bounded_output(proc, b"", CHILD_OUTPUT_LIMIT, CHILD_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        return Coverage("location", source, CoverageState.BLIND,
                        f"cannot read the account's portal permission store: {exc}")
    try:
        doc = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError, RecursionError):
        why = (err.decode("utf-8", "replace").strip().splitlines()
               or [f"exit status {proc.returncode}"])[-1]
        return Coverage("location", source, CoverageState.BLIND, literal(why, 300))
    return coverage_from_child(doc, source)


class UserPortalSource:
    """Each account's Flatpak location grants, as coverage only (module docstring)."""

    name = "portal-users"

    def __init__(self, root: Path | None = None, *, limit: int = MAX_ACCOUNTS) -> None:
        self._root = root
        self._limit = limit
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Coverage]] | None = None

    def snapshot(self) -> SourceSnapshot:
        return SourceSnapshot(self.name)

    def start(self, wake: Wake) -> None:
        pass  # nothing to follow: asked when a status is

    def stop(self) -> None:
        pass

    def coverage(self, last: SourceSnapshot | None = None) -> list[Coverage]:
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return list(self._cached[1])
            root = self._root if self._root is not None else paths.user_runtime_root()
            out: list[Coverage] = []
            found = list(accounts_with_bus(root))
            for uid, runtime in found[:self._limit]:
                out.append(ask_account(uid, runtime))
            if len(found) > self._limit:
                out.append(Coverage("location", self.name, CoverageState.PARTIAL,
                                    f"{len(found) - self._limit} more sessions: their "
                                    "Flatpak location grants were not read"))
            if not out:
                out.append(Coverage("location", self.name, CoverageState.WATCHING,
                                    "no account's session bus is running: no Flatpak "
                                    "location grants to read"))
            self._cached = (time.monotonic(), out)
            return list(out)


def child_main() -> int:
    """The child (run as the account): its portal location coverage, one JSON line."""
    from camguard.platform.linux.portal_location import PortalLocationSource
    from camguard.platform.process import ProcessDescriber

    try:
        bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "SESSION")
        (cov,) = PortalLocationSource(ProcessDescriber(), bus=bus).coverage()
        doc: dict[str, Any] = {
            "state": cov.state.value, "reason": cov.reason,
            "apps": [{"app_id": a.app_id, "access": a.access, "last_used": a.last_used,
                      "note": a.note} for a in cov.apps]}
        print(json.dumps(doc))
        return 0
    except Exception as exc:  # one line for the service, whatever went wrong
        print(json.dumps({"state": "blind", "reason": f"{type(exc).__name__}: {exc}"}))
        return 1
