"""The settings window's values in ``settings.json``: read-modify-write that keeps everything else.

One file holds several owners' values, all read by store.files.read_settings and checked by
store.policy.check_value where they are managed: ``detection`` (store.settings, the
monitor), ``settings`` (managed settings, store.policy) and ``ui`` (alert countdown,
notification channel, history retention; only camguard's UI reads it). Saving rewrites only
the keys it is given and keeps every other key and section exactly as it was, so a setting
a newer camguard (or the user, by hand) wrote is never dropped.

The file is written atomically and privately (0600, see store.files.write_private). A file
that cannot be parsed is moved aside (``settings.json.corrupt-N``) before a new one takes
its place, and a section of the wrong type is kept in a copy of the whole file: what the
user wrote is never lost silently, and ``save`` says where it went.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from camguard.core.rules import Mode
from camguard.core.settings import DEFAULT_CAMERA_GLOBS, DEFAULT_MIC_GLOBS
from camguard.core.text import literal
from camguard.store import paths
from camguard.store.files import aside_path, exclusive, read_settings, write_private
from camguard.store.policy import (
    EffectiveSettings,
    Policy,
    check_value,
    effective_settings,
    load_user_settings,
)

log = logging.getLogger(__name__)

FILE_NAME = "settings.json"

# What an alert nobody answers does; the values are store.policy's ``alert_default`` choices.
ALERT_DEFAULTS = ("allow", "kill", "block")
# Where alerts go: camguard's popup or a desktop notification, one or the other. Both at
# once stacked two windows asking the same question, and a click meant for the popup's
# "Block camera" landed on the notification over it. An older camguard's
# "popup+notification" is read as the popup.
POPUP = "popup"
POPUP_AND_NOTIFICATION = "popup+notification"
NOTIFICATION = "notification"
CHANNELS = (POPUP, NOTIFICATION)
_READ_AS = {POPUP_AND_NOTIFICATION: POPUP}
MIN_COUNTDOWN, MAX_COUNTDOWN = 5.0, 600.0
MAX_RETENTION_DAYS = 36500


@dataclass(frozen=True, slots=True)
class UiSettings:
    """What the settings window edits (start at login is the autostart entry, not here)."""

    alert_default: str = "allow"
    countdown: float = 30.0
    notification_channel: str = POPUP
    retention_days: int = 0  # 0: keep the history forever
    camera_globs: tuple[str, ...] = DEFAULT_CAMERA_GLOBS
    mic_globs: tuple[str, ...] = DEFAULT_MIC_GLOBS
    watch_sound_server: bool = True
    # Hours a device may be used, blocked outside them (core/schedule.py; the parental page).
    schedules: tuple[str, ...] = ()
    freeze_while_asking: bool = False

    @property
    def popup(self) -> bool:
        return self.notification_channel != NOTIFICATION

    @property
    def desktop_notification(self) -> bool:
        return self.notification_channel == NOTIFICATION


# Each setting's section and key in the file. The managed ones (policy.SETTINGS) use the
# names store.policy and store.settings already read, in the sections they read them from.
SECTIONS: dict[str, tuple[str, str]] = {
    "alert_default": ("settings", "alert_default"),
    "freeze_while_asking": ("settings", "freeze_while_asking"),
    "camera_globs": ("detection", "camera_globs"),
    "mic_globs": ("detection", "mic_globs"),
    "watch_sound_server": ("detection", "watch_sound_server"),
    "countdown": ("ui", "alert_countdown"),
    "notification_channel": ("ui", "notification_channel"),
    "retention_days": ("ui", "history_retention_days"),
    "schedules": ("settings", "schedules"),
}
MANAGED = frozenset({"alert_default", "camera_globs", "mic_globs", "watch_sound_server",
                     "schedules", "freeze_while_asking"})


def check(name: str, value: Any) -> Any:
    """``value`` as setting ``name`` stores it, or ValueError saying why it cannot be used."""
    if name in MANAGED:
        return check_value(name, value)
    if name == "countdown":
        if (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value) and MIN_COUNTDOWN <= value <= MAX_COUNTDOWN):
            return float(value)
        raise ValueError(f"the countdown must be {MIN_COUNTDOWN:.0f} to "
                         f"{MAX_COUNTDOWN:.0f} seconds, not {literal(repr(value), 40)}")
    if name == "notification_channel":
        if isinstance(value, str) and _READ_AS.get(value, value) in CHANNELS:
            return _READ_AS.get(value, value)
        raise ValueError(f"the notification channel must be one of {', '.join(CHANNELS)}")
    if name == "retention_days":
        if (isinstance(value, int) and not isinstance(value, bool)
                and 0 <= value <= MAX_RETENTION_DAYS):
            return value
        raise ValueError(f"history retention must be 0 (forever) to {MAX_RETENTION_DAYS} "
                         f"days, not {literal(repr(value), 40)}")
    raise ValueError(f"unknown setting {literal(name, 64)!r}")


def default_path() -> Path:
    return paths.config_dir() / FILE_NAME


WELCOMED = "welcomed"  # beside settings.json: the first-run window was shown


def welcomed(config_dir: Path) -> bool:
    """Whether the first-run window was shown before (or camguard was set up already: a
    settings file means someone used camguard before that window existed)."""
    return (config_dir / WELCOMED).exists() or (config_dir / FILE_NAME).exists()


def mark_welcomed(config_dir: Path) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / WELCOMED).touch()


class UiSettingsFile:
    """Load and save the UI's settings in ``settings.json``. Runs on the caller's thread
    (a file read or an atomic write: milliseconds). Separate processes are serialised by a
    lock file, so the tray and a hand-run tool cannot lose each other's change."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_path()

    # -- reading ---------------------------------------------------------------------------
    def load(self) -> tuple[UiSettings, list[str]]:
        """The user's values (defaults where missing or bad) and what was wrong. Never raises;
        never changes the file (a bad file is only moved aside when something is saved)."""
        doc, problem = self._read()
        problems = [problem] if problem else []
        values: dict[str, Any] = {}
        for name, (section, key) in SECTIONS.items():
            part = doc.get(section, {})
            if not isinstance(part, dict):
                msg = f"{self.path}: {section!r} must be an object; using defaults"
                if msg not in problems:
                    problems.append(msg)
                continue
            if key not in part:
                continue
            try:
                values[name] = check(name, part[key])
            except ValueError as exc:
                problems.append(f"{self.path}: {section}.{key}: {exc}; using the default")
        return UiSettings(**values), problems

    def present(self) -> frozenset[str]:
        """The settings the user's file sets (whatever their value)."""
        doc, _problem = self._read()
        out = set()
        for name, (section, key) in SECTIONS.items():
            part = doc.get(section)
            if isinstance(part, dict) and key in part:
                out.add(name)
        return frozenset(out)

    def _read(self) -> tuple[dict[str, Any], str | None]:
        return read_settings(self.path)

    # -- writing ---------------------------------------------------------------------------
    def save(self, values: Mapping[str, Any]) -> list[str]:
        """Write ``values`` (setting name -> value, names from :data:`SECTIONS`) and keep
        every other key. Returns notes for the user (a damaged file was moved aside).

        Raises ValueError for a bad value (nothing is written) and OSError when the file
        cannot be read or written (a file that exists but cannot be read is never
        replaced: it may hold settings that would be lost).
        """
        checked = {name: check(name, value) for name, value in values.items()}
        notes: list[str] = []
        with self._locked():
            doc = self._load_for_update(notes)
            for name, value in checked.items():
                section, key = SECTIONS[name]
                part = doc.get(section)
                if not isinstance(part, dict):
                    if section in doc:
                        notes.append(self._keep_copy(f"{section!r} was not an object"))
                    part = {}
                    doc[section] = part
                part[key] = list(value) if isinstance(value, tuple) else value
            data = _encode(doc)
            write_private(self.path, data)
        for note in notes:
            log.warning("%s", note)
        return notes

    def _load_for_update(self, notes: list[str]) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:
            notes.append(self._move_aside(exc))
            return {}
        return doc

    def _move_aside(self, exc: BaseException) -> str:
        aside = aside_path(self.path)
        # A file that cannot be moved aside must not be overwritten: OSError goes up.
        os.replace(self.path, aside)
        return f"{self.path} could not be read ({exc}); it was kept as {aside.name}"

    def _keep_copy(self, why: str) -> str:
        raw = self.path.read_bytes()
        # Named by content, so saving again does not pile up copies of the same file.
        copy = self.path.with_name(f"{self.path.name}.rejected-"
                                   f"{hashlib.sha256(raw).hexdigest()[:8]}")
        if not copy.exists():
            write_private(copy, raw)
        return f"{self.path}: {why}; the file as it was is kept as {copy.name}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive(self.path):
            yield


def answer_default(eff: EffectiveSettings, parental: bool = False) -> str:
    """What an alert nobody answers does, when nobody chose: "allow" for a laptop owner
    (killing a call because nobody looked is worse), "block" when a parental lock is set or
    the mode blocks what is not allowed (the child is the one not answering). A value the
    user or a policy set is kept as it is."""
    item = eff.items["alert_default"]
    if item.source != "default":
        return str(item.value)
    return "block" if parental or eff.mode is Mode.BLOCK_ALL else str(item.value)


def settings_in_force(settings_file: UiSettingsFile, policy: Policy, *,
                      parental: bool = False) -> tuple[UiSettings, list[str]]:
    """The user's settings with the managed ones the policy decides replaced (what the tray
    should use at start-up), and the problems met reading them. Never raises.
    ``parental``: a parental lock is set (the safe answer becomes the default)."""
    ui, problems = settings_file.load()
    user, more = load_user_settings(settings_file.path)
    eff = effective_settings(user, policy)
    notes = list(dict.fromkeys([*problems, *more, *eff.problems]))
    values = {name: eff.value(name) for name in MANAGED}
    values["alert_default"] = answer_default(eff, parental)
    return with_values(ui, values), notes


def _encode(doc: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a path that is not UTF-8): JSON's \uXXXX escape keeps it
        # exactly and the file stays valid UTF-8.
        return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def changed_fields(old: UiSettings, new: UiSettings) -> frozenset[str]:
    return frozenset(f.name for f in fields(UiSettings)
                     if getattr(old, f.name) != getattr(new, f.name))


def with_values(settings: UiSettings, values: Mapping[str, Any]) -> UiSettings:
    """``settings`` with some fields replaced (e.g. the values a policy puts in force)."""
    known = {f.name for f in fields(UiSettings)}
    return replace(settings, **{k: v for k, v in values.items() if k in known})
