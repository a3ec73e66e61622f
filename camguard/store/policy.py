"""Managed policy: settings and rules an administrator sets, and which ones users may change.

Read from ``/etc/camguard/policy.toml`` (stdlib tomllib) or, on Windows, from
``HKLM\\Software\\Policies\\camguard`` (where Group Policy and Intune write), both through
the :class:`PolicyReader` interface. What wins, per setting:

* locked by the policy: the policy's value (the built-in default if it sets none), always;
* not locked: the user's own value, else the policy's (a default the user may change),
  else the built-in default.

A policy that exists but cannot be read or parsed is reported loudly (someone may have
damaged or tampered with it) and camguard keeps the last good policy, or the defaults.
"""

from __future__ import annotations

import logging
import math
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from camguard.core.defaults import DEFAULT_POLICY_FILE
from camguard.core.rules import Duration, Mode, Origin, Rule, RuleError, is_absolute
from camguard.core.schedule import Schedule, schedule_rules
from camguard.core.settings import (
    DEFAULT_CAMERA_GLOBS,
    DEFAULT_MIC_GLOBS,
    DEFAULT_SOUND_SERVER_EXES,
)
from camguard.core.text import literal
from camguard.store.files import read_settings

log = logging.getLogger(__name__)

RULES = "rules"  # a lockable name that is not a value: the rule list itself
ALL = "*"  # in ``locked``: every setting


# -- the settings an administrator can manage ------------------------------------------------
@dataclass(frozen=True, slots=True)
class SettingSpec:
    name: str
    default: Any
    type: str  # choice, bool, number, path, text, list
    help: str
    choices: tuple[str, ...] = ()


SYSLOG_FACILITIES = ("user", "daemon", "auth", "authpriv", "local0", "local1", "local2",
                     "local3", "local4", "local5", "local6", "local7")
_SPECS = [
    SettingSpec("mode", Mode.ASK.value, "choice", "what happens when no rule matches",
                tuple(Mode)),
    SettingSpec("alert_default", "allow", "choice", "what an alert nobody answers does",
                ("allow", "block", "kill")),
    SettingSpec("freeze_while_asking", False, "bool", "pause an app (SIGSTOP) while its "
                "alert waits for an answer; continued on the answer"),
    SettingSpec("events_file", "", "path", "JSON-lines event log (empty: the state folder)"),
    SettingSpec("events_stderr", False, "bool", "also write events to stderr (journald)"),
    SettingSpec("syslog", "", "text", "send events to syslog: udp://HOST:PORT, "
                "tcp://HOST:PORT, local (/dev/log) or unix:PATH; empty: off"),
    SettingSpec("syslog_facility", "authpriv", "choice", "syslog facility",
                SYSLOG_FACILITIES),
    SettingSpec("hook", "", "path", "program run on events (absolute path; empty: none)"),
    SettingSpec("hook_events", ("device.started", "device.stopped", "device.raw-usb",
                                "device.probe-storm"),
                "list",
                "event types the hook runs for"),
    SettingSpec("hook_timeout", 10.0, "number", "seconds before a hook is killed"),
    SettingSpec("camera_globs", DEFAULT_CAMERA_GLOBS, "list", "camera device patterns"),
    SettingSpec("mic_globs", DEFAULT_MIC_GLOBS, "list", "raw microphone device patterns"),
    SettingSpec("rescan_interval", 30.0, "number", "seconds between safety rescans"),
    SettingSpec("watch_sound_server", True, "bool", "watch the sound server's streams"),
    SettingSpec("users_may_block", True, "bool", "the service lets accounts that are not "
                "admins block a device for everyone (see docs/security.md)"),
    SettingSpec("schedules", (), "list", "hours a device may be used, blocked outside them: "
                "'camera mon-fri 16:00-19:00; sat,sun 10:00-20:00' (core/schedule.py)"),
]
SETTINGS: dict[str, SettingSpec] = {s.name: s for s in _SPECS}
LOCKABLE = frozenset({*SETTINGS, RULES})
# settings.json's "detection" section: the managed detection settings, and two that only a
# user's own file sets (no policy manages them). One schema, checked by check_value.
DETECTION: dict[str, SettingSpec] = {
    **{name: SETTINGS[name] for name in ("camera_globs", "mic_globs", "rescan_interval",
                                         "watch_sound_server")},
    "settle": SettingSpec("settle", 0.002, "number", "seconds to let a burst of wake-ups "
                          "settle before looking"),
    "sound_server_exes": SettingSpec("sound_server_exes", DEFAULT_SOUND_SERVER_EXES, "list",
                                     "sound servers, by executable path, not reported as "
                                     "microphone users"),
    "probe_threshold": SettingSpec("probe_threshold", 1.5, "number", "seconds: a device "
                                   "session shorter than this is kept in history as a probe"),
    "probe_storm": SettingSpec("probe_storm", 10.0, "number", "more probes than this a minute "
                               "by one app is one probe-storm alert (0: off)"),
}


def check_value(name: str, value: Any, specs: Mapping[str, SettingSpec] = SETTINGS) -> Any:
    """``value`` as the setting's type, or ValueError saying why it cannot be used."""
    spec = specs.get(name)
    if spec is None:
        raise ValueError(f"unknown setting {literal(name, 64)!r}")
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
    elif spec.type == "number":
        if (not isinstance(value, bool) and isinstance(value, int | float)
                and math.isfinite(value) and 0 <= value <= 86400 * 366):
            return float(value)
    elif spec.type == "list":
        if isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value):
            if name.endswith(("_globs", "_exes")) and not all(v.startswith("/") for v in value):
                raise ValueError(f"{name}: every pattern must be an absolute path")
            if name == "schedules":
                return tuple(_schedule(v) for v in value)
            return tuple(value)
    elif isinstance(value, str) and len(value) <= 4096 and "\x00" not in value:
        if spec.type == "choice" and value not in spec.choices:
            raise ValueError(f"{name} must be one of {', '.join(spec.choices)}, "
                             f"not {literal(value, 40)!r}")
        if spec.type == "path" and value and not is_absolute(value):
            raise ValueError(f"{name} must be an absolute path, not {literal(value, 200)!r}")
        return value
    raise ValueError(f"bad value for {name} ({spec.type} expected): {literal(repr(value), 80)}")


def _schedule(text: str) -> str:
    """A schedule as camguard writes it, or ValueError saying why it is not one."""
    try:
        return str(Schedule.parse(text))
    except RuleError as exc:
        raise ValueError(f"schedules: {exc}") from None


# -- a policy ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Policy:
    source: str = ""  # who sets it: "policy /etc/camguard/policy.toml", "registry HKLM\\..."
    settings: Mapping[str, Any] = field(default_factory=dict)
    locked: frozenset[str] = frozenset()
    rules: tuple[Rule, ...] = ()
    problems: tuple[str, ...] = ()  # parts that were skipped (a bad value, an unknown key)
    # Someone other than root may rewrite it: still applied (loudly), but the root service
    # lets such a policy choose neither a program to run nor a file to write as root.
    writable_by_others: bool = False

    def is_locked(self, name: str) -> bool:
        return name in self.locked or ALL in self.locked


NO_POLICY = Policy()


class PolicyError(Exception):
    """A policy exists but cannot be used (unreadable, or it does not parse)."""


class PolicyReader(Protocol):
    """Reads one policy source. Runs on the caller's thread; a file or registry read."""

    @property
    def source(self) -> str: ...

    def read(self) -> Policy | None:
        """The policy; None when there is none. Raises :class:`PolicyError` when one exists
        but cannot be read or parsed."""
        ...


def policy_from_mapping(doc: Mapping[str, Any], source: str) -> Policy:
    """A policy from its parsed form (``settings``, ``locked``, ``rules``); bad parts are
    skipped and listed in ``problems``, never raised."""
    problems: list[str] = []
    settings: dict[str, Any] = {}
    raw_settings = doc.get("settings", {})
    if not isinstance(raw_settings, Mapping):
        problems.append("'settings' must be a table")
        raw_settings = {}
    locked_raw: list[Any] = []
    for where in (doc, raw_settings):
        value = where.get("locked", [])
        if isinstance(value, list):
            locked_raw += value
        else:
            problems.append("'locked' must be a list of setting names")
    locked = set()
    for name in locked_raw:
        if isinstance(name, str) and (name in LOCKABLE or name == ALL):
            locked.add(name)
        else:
            problems.append(f"cannot lock unknown setting {literal(repr(name), 64)}")
    for name, value in raw_settings.items():
        if name == "locked":
            continue
        try:
            settings[name] = check_value(name, value)
        except ValueError as exc:
            problems.append(f"{exc}; ignored")
    for key in set(doc) - {"settings", "locked", RULES}:
        problems.append(f"unknown section {literal(str(key), 64)!r} ignored")
    rules_raw = doc.get(RULES, [])
    from camguard.core.rules_json import rules_from_json  # only a policy with rules

    rules, errors = rules_from_json(rules_raw if isinstance(rules_raw, list) else {
        "rules": rules_raw}, Origin.POLICY)
    problems += errors
    kept = []
    for rule in rules:
        if rule.duration is not Duration.ALWAYS:
            problems.append(f"policy rule '{rule.name}': a policy rule lasts 'always'; "
                            "skipped")
        else:
            kept.append(rule)
    return Policy(source, settings, frozenset(locked), tuple(kept),
                  tuple(f"{source}: {p}" for p in problems))


class TomlPolicyReader:
    """The policy file; missing is "no policy", unreadable or unparsable is an error."""

    def __init__(self, path: Path = DEFAULT_POLICY_FILE) -> None:
        self.path = path

    @property
    def source(self) -> str:
        return f"policy {self.path}"

    def read(self) -> Policy | None:
        try:
            raw = self.path.read_bytes()
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PolicyError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        import tomllib  # here: most machines have no policy file to parse (issue 16)

        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise PolicyError(f"{self.path} does not parse: {exc}") from exc
        policy = policy_from_mapping(doc, self.source)
        if sys.platform != "win32" and (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                                        or st.st_uid != 0):
            # A policy anyone can rewrite protects nothing; still applied, loudly flagged.
            warn = (f"{self.source}: the file is writable by users other than root "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid})")
            policy = Policy(policy.source, policy.settings, policy.locked, policy.rules,
                            (*policy.problems, warn), writable_by_others=True)
        return policy


def default_reader() -> PolicyReader:
    if sys.platform == "win32":
        from camguard.store.policy_registry import WindowsRegistryPolicyReader

        return WindowsRegistryPolicyReader()
    return TomlPolicyReader()


# -- keeping the last good policy -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PolicyStatus:
    policy: Policy  # what is in force
    error: str | None = None  # why the policy source could not be used (loud)


class ManagedPolicy:
    """The policy in force: reloaded on demand, the last good one kept when a read fails.

    ``report``: log an unreadable policy (error) and its problems (warnings) at each load;
    false where the caller prints the returned status itself (a command), so that each
    message is said once."""

    def __init__(self, reader: PolicyReader, *, report: bool = True) -> None:
        self.reader = reader
        self.report = report
        self._good: Policy = NO_POLICY
        self._loaded = False

    def load(self) -> PolicyStatus:
        try:
            policy = self.reader.read() or NO_POLICY
        except PolicyError as exc:
            kept = "the last good policy" if self._loaded and self._good.source else \
                "the built-in defaults"
            error = (f"MANAGED POLICY NOT APPLIED: {exc}. Keeping {kept}. The policy may "
                     "have been damaged or tampered with; tell your administrator.")
            if self.report:
                log.error("%s", error)
            return PolicyStatus(self._good, error)
        for problem in policy.problems if self.report else ():
            log.warning("%s", problem)
        self._good, self._loaded = policy, True
        return PolicyStatus(policy)


# -- what is in force --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EffectiveSetting:
    name: str
    value: Any
    source: str  # "default", "user" or "policy"
    locked: bool = False
    locked_by: str | None = None  # the policy's source
    note: str = ""


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    items: Mapping[str, EffectiveSetting]
    rules: tuple[Rule, ...] = ()  # in force: the policy's, then (unless locked) the user's
    problems: tuple[str, ...] = ()

    def value(self, name: str) -> Any:
        return self.items[name].value

    def locked(self, name: str) -> bool:
        return self.items[name].locked

    @property
    def mode(self) -> Mode:
        return Mode(self.value("mode"))

    def refusal(self, name: str) -> str | None:
        """Why a user may not change ``name`` (None: they may)."""
        item = self.items[name]
        if not item.locked:
            return None
        what = "the rules are" if name == RULES else f"the setting {name!r} is"
        return f"{what} locked by {item.locked_by}; ask your administrator"


def effective_settings(user: Mapping[str, Any], policy: Policy,
                       user_rules: Sequence[Rule] = ()) -> EffectiveSettings:
    """Per setting: the value in force, where it comes from, and whether it is locked.

    ``user`` holds the user's own values (already checked); ``user_rules`` their rules.
    """
    items: dict[str, EffectiveSetting] = {}
    problems = list(policy.problems)
    for name, spec in SETTINGS.items():
        locked = policy.is_locked(name)
        by = policy.source if locked else None
        if locked:
            value = policy.settings.get(name, spec.default)
            src = "policy" if name in policy.settings else "default"
            note = ""
            if name in user and user[name] != value:
                note = f"your value {literal(repr(user[name]), 80)} is overridden"
            items[name] = EffectiveSetting(name, value, src, True, by, note)
        elif name in user:
            items[name] = EffectiveSetting(name, user[name], "user")
        elif name in policy.settings:
            items[name] = EffectiveSetting(name, policy.settings[name], "policy",
                                           note="a default set by the policy; you may change it")
        else:
            items[name] = EffectiveSetting(name, spec.default, "default")
    rules_locked = policy.is_locked(RULES)
    # A schedule is enforced as the parent's rules (core/schedule.py), locked or not: only
    # the setting itself (behind the parental lock, or the policy's lock) changes it.
    scheduled, bad = schedule_rules(tuple(items["schedules"].value))
    problems += bad
    rules = [*policy.rules, *scheduled]
    note = f"{len(policy.rules)} policy rule(s)"
    if rules_locked:
        if user_rules:
            note += f"; your {len(user_rules)} rule(s) are not used"
    else:
        rules += user_rules
        note += f", {len(user_rules)} of yours"
    items[RULES] = EffectiveSetting(RULES, len(rules), "policy" if rules_locked else "user",
                                    rules_locked, policy.source if rules_locked else None,
                                    note)
    return EffectiveSettings(items, tuple(rules), tuple(problems))


def load_user_settings(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The user's values for managed settings from ``settings.json``: its ``settings`` object
    and its ``detection`` object (read by store.settings too). Never raises."""
    doc, problem = read_settings(path)
    if problem:
        return {}, [problem]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for section in ("detection", "settings"):
        part = doc.get(section, {})
        if not isinstance(part, dict):
            problems.append(f"{path}: {section!r} must be an object")
            continue
        for name, value in part.items():
            if name not in SETTINGS:
                if section == "settings":
                    problems.append(f"{path}: unknown setting {literal(name, 64)!r} ignored")
                continue
            try:
                values[name] = check_value(name, value)
            except ValueError as exc:
                problems.append(f"{path}: {exc}; using the default")
    return values, problems
