"""What the main window says about each sensor: live now, blocked, or not in use, and how
well camguard sees it (the coverage list that ``status --json`` prints). No Qt here.

A sensor that no source watches is never said to be "not in use": camguard cannot know,
and says so with the reason (issue 11: never a silent blind spot).
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.ui.model import Snapshot

SENSORS = (DeviceKind.CAMERA, DeviceKind.MICROPHONE, DeviceKind.SCREEN, DeviceKind.LOCATION)
TITLES = {DeviceKind.CAMERA: "Camera", DeviceKind.MICROPHONE: "Microphone",
          DeviceKind.SCREEN: "Screen", DeviceKind.LOCATION: "Location"}
# How a live use is said, per sensor ("Screen: being recorded by obs").
VERBS = {DeviceKind.CAMERA: "In use by", DeviceKind.MICROPHONE: "In use by",
         DeviceKind.SCREEN: "Being recorded by", DeviceKind.LOCATION: "Used by"}
SOURCE_WORDS = {"procfs": "device files (/dev)", "pulse": "the sound server",
                "pipewire": "PipeWire", "geoclue": "GeoClue (location service)"}
STATE_WORDS = {CoverageState.WATCHING: "watching", CoverageState.PARTIAL: "partly",
               CoverageState.BLIND: "blind"}


class Live(enum.StrEnum):
    IN_USE = "in-use"
    BLOCKED = "blocked"
    IDLE = "idle"  # not in use, and camguard would see it
    UNSEEN = "unseen"  # no use seen, but camguard is blind to it: never drawn as idle


@dataclass(frozen=True, slots=True)
class SensorView:
    kind: DeviceKind
    live: Live
    headline: str  # "In use by zoom", "Blocked until 14:00", "camguard cannot see it"
    coverage: CoverageState | None  # None: not reported (the service does not say yet)
    detail: str  # how well it is watched, in words

    @property
    def title(self) -> str:
        return TITLES[self.kind]


def overall(entries: Sequence[Coverage]) -> CoverageState:
    """One state for a sensor from its sources: blind when every source is blind (or none
    watches it), watching when every source is, partial otherwise."""
    states = {c.state for c in entries}
    if not states or states == {CoverageState.BLIND}:
        return CoverageState.BLIND
    if states == {CoverageState.WATCHING}:
        return CoverageState.WATCHING
    return CoverageState.PARTIAL


def _names(snap: Snapshot, kind: DeviceKind) -> list[str]:
    names: list[str] = []
    for u in snap.users:
        if u.usage.device.kind is not kind:
            continue
        p = u.usage.process
        name = "an app camguard cannot see" if p is None else literal(
            p.name or os.path.basename(p.exe or "") or f"process {p.pid}", 32)
        if p is not None and u.origin is not None and u.origin.sandboxed:
            name = u.origin.label(name)
        if name not in names:
            names.append(name)
    return names


def _coverage_detail(kind: DeviceKind, entries: Sequence[Coverage] | None,
                     state: CoverageState | None) -> str:
    """A short line for the card (the coverage panel has each reason in full)."""
    if entries is None or state is None:
        return "How well camguard sees it is not reported here."
    if not entries:
        return f"Not watched: nothing here lets camguard see the {kind.value}."
    if state is CoverageState.WATCHING:
        return "Watched: every use is seen and named."
    lead = "Not watched" if state is CoverageState.BLIND else "Partly watched"
    why = [("not through " if c.state is CoverageState.BLIND else "only partly through ")
           + SOURCE_WORDS.get(c.source, literal(c.source, 40))
           for c in entries if c.state is not CoverageState.WATCHING]
    if state is CoverageState.BLIND and len(entries) == 1 and entries[0].reason:
        why = [literal(entries[0].reason.split(":")[0].split(" (")[0], 60)]
    return f"{lead}: {', '.join(why)}." if why else f"{lead}."


def blind_sensors(coverage: Sequence[Coverage] | None) -> set[DeviceKind]:
    """The sensors no source watches (empty when coverage is not known)."""
    if coverage is None:
        return set()
    return {k for k in SENSORS
            if overall([c for c in coverage if c.sensor == k.value]) is CoverageState.BLIND}


def sensor_views(snap: Snapshot, coverage: Sequence[Coverage] | None) -> list[SensorView]:
    """One view per sensor. ``coverage`` None: not known (a service that does not report
    it); an empty list or a sensor without an entry: nothing watches that sensor here."""
    views = []
    for kind in SENSORS:
        entries = None if coverage is None else [c for c in coverage if c.sensor == kind.value]
        state = None if entries is None else overall(entries)
        names = _names(snap, kind)
        if kind in snap.blocked:
            end = snap.block_end(kind)
            until = f" until {time.strftime('%H:%M', time.localtime(end))}" \
                if end is not None else " until you unblock it"
            live, head = Live.BLOCKED, f"Blocked{until}"
        elif names:
            who = names[0] if len(names) == 1 else f"{len(names)} apps"
            live, head = Live.IN_USE, f"{VERBS[kind]} {who}"
        elif state is CoverageState.BLIND:
            live, head = Live.UNSEEN, "camguard cannot see it"
        elif state is CoverageState.PARTIAL:
            live, head = Live.IDLE, "No use seen (partly watched)"
        elif state is None:
            live, head = Live.IDLE, "No use reported"
        else:
            live, head = Live.IDLE, "Not in use"
        views.append(SensorView(kind, live, head, state, _coverage_detail(kind, entries, state)))
    return views


def coverage_rows(coverage: Sequence[Coverage]) -> list[tuple[str, str, str, str]]:
    """The coverage panel's rows: sensor, source, state, reason (literal, plain words),
    in the sensors' order; a sensor no source reports on gets a row saying so."""
    def row(c: Coverage, title: str) -> tuple[str, str, str, str]:
        return (title, SOURCE_WORDS.get(c.source, literal(c.source, 40)),
                STATE_WORDS.get(c.state, str(c.state)), literal(c.reason, 400))

    rows = []
    for kind in SENSORS:
        mine = sorted((c for c in coverage if c.sensor == kind.value), key=lambda c: c.source)
        rows += [row(c, TITLES[kind]) for c in mine]
        if not mine:
            rows.append((TITLES[kind], "none", "blind",
                         f"nothing on this computer lets camguard watch the {kind.value}"))
    known = {k.value for k in SENSORS}
    rows += [row(c, literal(c.sensor, 40)) for c in coverage if c.sensor not in known]
    return rows
