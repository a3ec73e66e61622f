"""The Windows ConsentStore (CapabilityAccessManager) as data: which app last used the camera,
microphone or location, when, and whether Windows denies it. Pure code, on every OS.

Fed either by a ``reg export`` file (regfile.parse; ``camguard forensics windows-consent``)
or by the live registry (consent_reader). The store keeps only each app's last session and
stays "in use" forever after a crash, so :attr:`ConsentEntry.in_use` is what the store says,
history and naming only: live use comes from the sensor monitor and audio sessions, and
:func:`live_candidates` never turns an entry into live use by itself.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from camguard.platform.windows.regfile import REG_BINARY, REG_DWORD, REG_QWORD, REG_SZ, parse

CONSENT_PATH = ("software", "microsoft", "windows", "currentversion",
                "capabilityaccessmanager", "consentstore")
KINDS = {"webcam": "camera", "microphone": "microphone", "location": "location"}
NON_PACKAGED = "nonpackaged"
_EPOCH_1601 = _dt.datetime(1601, 1, 1, tzinfo=_dt.UTC)
# FILETIME of 9999-12-31T23:59:59.9999999Z: anything larger is not a date.
MAX_FILETIME = 2650467743999999999
_HIVES = {"hkey_current_user": "HKCU", "hkey_local_machine": "HKLM", "hkey_users": "HKU"}

Values = Mapping[str, tuple[Any, int]]


class ConsentError(ValueError):
    """A ConsentStore value that cannot mean what the store documents (wrong type, a time
    that is no date); the message names the key."""


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    kind: str  # camera | microphone | location
    app: str  # package family name, or the exe path with '#' turned back into '\'
    packaged: bool
    last_start: int  # FILETIME (100 ns since 1601 UTC), 0 when never written
    last_stop: int
    denied: bool  # Windows blocks this app: its own Value, NonPackaged's or the whole switch
    hive: str  # HKCU, HKLM or HKU\<SID>

    @property
    def in_use(self) -> bool:
        """What the store says: started and never stopped (also after a crash)."""
        return self.last_start != 0 and self.last_stop == 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "app": self.app, "packaged": self.packaged,
                "last_start": rfc3339(self.last_start), "last_stop": rfc3339(self.last_stop),
                "in_use": self.in_use, "denied": self.denied, "hive": self.hive}


def rfc3339(filetime: int) -> str | None:
    """A FILETIME as RFC 3339 UTC with its 100 ns digits (None for 0, "never")."""
    if filetime == 0:
        return None
    if not 0 < filetime <= MAX_FILETIME:
        raise ConsentError(f"{filetime} is not a FILETIME")
    at = _EPOCH_1601 + _dt.timedelta(microseconds=filetime // 10)
    ticks = filetime % 10_000_000
    fraction = f".{ticks:07d}".rstrip("0") if ticks else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _split(path: str) -> tuple[str, list[str]] | None:
    """(hive label, parts below ConsentStore) of a ConsentStore key path, else None."""
    parts = path.split("\\")
    hive = _HIVES.get(parts[0].casefold())
    if hive is None:
        return None
    rest = parts[1:]
    if hive == "HKU":
        if not rest:
            return None
        hive, rest = f"HKU\\{rest[0]}", rest[1:]
    if tuple(p.casefold() for p in rest[:len(CONSENT_PATH)]) != CONSENT_PATH:
        return None
    return hive, rest[len(CONSENT_PATH):]


def _text(values: Values, name: str) -> str:
    for key, (data, kind) in values.items():
        if key.casefold() == name.casefold() and kind == REG_SZ and isinstance(data, str):
            return data
    return ""


def _get(values: Values, name: str) -> tuple[Any, int] | None:
    for key, found in values.items():
        if key.casefold() == name.casefold():
            return found
    return None


def filetime(values: Values, name: str, where: str) -> int:
    """``name`` as a FILETIME: a QWORD (most builds), an 8-byte REG_BINARY FILETIME struct,
    or a pair of DWORDs ``<name>Low``/``<name>High`` (assumed layout for the builds that
    split it; not documented by Microsoft). 0 when absent."""
    found = _get(values, name)
    if found is not None:
        data, kind = found
        if kind == REG_QWORD and isinstance(data, int):
            return data
        if kind == REG_BINARY and isinstance(data, bytes) and len(data) == 8:
            return int.from_bytes(data, "little")
        raise ConsentError(f"{where}: {name} is neither a QWORD nor an 8-byte FILETIME")
    low, high = _get(values, name + "Low"), _get(values, name + "High")
    if low is None and high is None:
        return 0
    if low is None or high is None or low[1] != REG_DWORD or high[1] != REG_DWORD:
        raise ConsentError(f"{where}: {name}Low and {name}High must both be DWORDs")
    value = (int(high[0]) << 32) | int(low[0])
    rfc3339(value)  # refuse a value that is no date here, naming the key
    return value


def entries(keys: Iterable[tuple[str, Values]]) -> list[ConsentEntry]:
    """Every app entry under ConsentStore\\{webcam,microphone,location} in ``keys`` ((path,
    values) pairs, any order), sorted by hive, kind and app. Other capabilities and deeper
    keys are ignored."""
    switches: dict[tuple[str, str, bool], bool] = {}  # (hive, capability, nonpackaged) -> Deny
    apps: list[tuple[str, str, str, bool, Values, str]] = []
    for path, values in keys:
        split = _split(path)
        if split is None or not split[1] or split[1][0].casefold() not in KINDS:
            continue
        hive, rest = split
        cap = rest[0].casefold()
        denied = _text(values, "Value").casefold() == "deny"
        if len(rest) == 1:
            switches[(hive, cap, False)] = denied
        elif len(rest) == 2 and rest[1].casefold() == NON_PACKAGED:
            switches[(hive, cap, True)] = denied
        elif len(rest) == 2:
            apps.append((hive, cap, rest[1], True, values, path))
        elif len(rest) == 3 and rest[1].casefold() == NON_PACKAGED:
            apps.append((hive, cap, rest[2].replace("#", "\\"), False, values, path))
    out = []
    for hive, cap, app, packaged, values, path in apps:
        denied = (_text(values, "Value").casefold() == "deny"
                  or switches.get((hive, cap, False), False)
                  or (not packaged and switches.get((hive, cap, True), False)))
        start = filetime(values, "LastUsedTimeStart", path)
        stop = filetime(values, "LastUsedTimeStop", path)
        for t in (start, stop):
            rfc3339(t)
        out.append(ConsentEntry(KINDS[cap], app, packaged, start, stop, denied, hive))
    return sorted(out, key=lambda e: (e.hive, e.kind, e.app.casefold()))


def entries_from_export(raw: bytes, warnings: list[str] | None = None) -> list[ConsentEntry]:
    """The ConsentStore entries of a ``reg export`` file. Raises ValueError (RegFileError or
    ConsentError) naming the line or key when the file cannot be read whole; doubts that do
    not stop the reading go to ``warnings``."""
    return entries((k.path, k.values) for k in parse(raw, warnings))


def live_candidates(entries_now: Iterable[ConsentEntry], running_exes: Iterable[str]
                    ) -> list[ConsentEntry]:
    """The desktop apps the store says are in use AND that have a running process with that
    exe: hints for naming a live use the sensor monitor or audio sessions report, never a
    live use on their own (an entry left "in use" by a crash names no running process)."""
    running = {e.casefold() for e in running_exes}
    return [e for e in entries_now
            if e.in_use and not e.denied and not e.packaged and e.app.casefold() in running]
