"""The event outputs (JSON-lines log, syslog, stderr, the hook program), built in this one
place for the tray, the service and the commands, from the settings in force."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camguard.app.settings import events_file, service_effective
from camguard.core.clock import Clock
from camguard.core.text import literal
from camguard.platform.hooks import HookConfig, HookResult, HookRunner
from camguard.store.eventlog import (
    FILE_NAME,
    EventLog,
    JsonLinesFile,
    Output,
    StderrOutput,
    SyslogOutput,
    default_path,
)
from camguard.store.policy import EffectiveSettings, PolicyStatus
from camguard.store.syslog import SyslogTarget


@dataclass
class EventOutputs:
    """The event log as the settings configure it, and the hook runner listening to it."""

    log: EventLog
    hooks: HookRunner | None
    problems: list[str]

    def start_hooks(self) -> None:
        if self.hooks is not None:
            self.hooks.start()

    def start(self, version: str) -> None:
        self.start_hooks()
        self.log.started(version)

    def stop(self, reason: str = "requested") -> None:
        self.log.stopped(reason)
        if self.hooks is not None:
            # Queued hooks still run, each within its own timeout.
            self.hooks.stop(timeout=self.hooks.config.timeout * 2 + 5)
        self.log.close()


def build_event_outputs(eff: EffectiveSettings, clock: Clock,
                        events_file: Path | None = None, *, hook: bool = True,
                        root_owned_hook: bool = False) -> EventOutputs:
    """The JSON-lines log (``events_file``, else the setting, else the state folder), syslog
    and stderr as set, and the ``hook`` program run for ``hook_events`` (unless ``hook`` is
    False; with ``root_owned_hook``, only a program that only root can change)."""
    path = events_file
    if path is None and eff.value("events_file"):
        path = Path(eff.value("events_file"))
    log, problems = open_event_log(clock, path, syslog=eff.value("syslog"),
                                   facility=eff.value("syslog_facility"),
                                   stderr=eff.value("events_stderr"))
    runner = None
    program = eff.value("hook") if hook else ""
    if program:
        try:
            config = HookConfig(program, frozenset(eff.value("hook_events")),
                                eff.value("hook_timeout") or 10.0)
            if root_owned_hook:
                _check_root_owned(program)
        except ValueError as exc:
            problems.append(f"hook disabled: {exc}")
        else:
            runner = HookRunner(config, on_result=lambda r: _hook_failed(log, r))
            log.add_listener(_listener(runner))
    return EventOutputs(log, runner, problems)


def tray_outputs(flag: Path | None, eff: EffectiveSettings, clock: Clock) -> EventOutputs:
    """A user's tray (or command): ``--events-file`` unless the policy locks it."""
    path, problems = events_file(flag, eff)
    outputs = build_event_outputs(eff, clock, path)
    outputs.problems[:0] = problems
    return outputs


def events_file_in_use(flag: Path | None, eff: EffectiveSettings) -> Path:
    """The file a user's tray and commands write their events to (what
    :func:`tray_outputs` opens): ``--events-file``, else the setting, else the default."""
    path, _problems = events_file(flag, eff)
    return path if path is not None else default_path()


def service_outputs(flag: Path | None, status: PolicyStatus, clock: Clock,
                    state: Path) -> EventOutputs:
    """The root service: the managed policy's outputs, ``--events-file`` unless the policy
    locks it, else ``events.jsonl`` in the service's state folder.

    The service runs as root, so a policy that users other than root may rewrite chooses
    neither the file it writes nor the program it runs, and the hook must be a program only
    root can change."""
    eff = service_effective(status)
    path, problems = events_file(flag, eff)
    trusted = not status.policy.writable_by_others
    from_policy = path is not None and path != flag
    if not trusted and (eff.value("hook") or from_policy):
        problems.append(f"{status.policy.source}: users other than root may change it, so "
                        "the service ignores its events_file and hook")
        if from_policy:
            path = None
    outputs = build_event_outputs(eff, clock, path or state / FILE_NAME, hook=trusted,
                                  root_owned_hook=True)
    outputs.problems[:0] = problems
    return outputs


def _check_root_owned(program: str) -> None:
    """ValueError unless ``program`` is a file that only root can change: otherwise whoever
    can change it runs code as root."""
    try:
        st = os.stat(program)
    except OSError as exc:
        raise ValueError(f"cannot use {literal(program, 200)}: {exc.strerror or exc}"
                         ) from None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & (stat.S_IWGRP
                                                                         | stat.S_IWOTH):
        raise ValueError(f"{literal(program, 200)} must be a file owned by root that no "
                         f"one else may write (owner uid {st.st_uid}, mode "
                         f"{stat.S_IMODE(st.st_mode):04o})")


def _listener(runner: HookRunner) -> Any:
    def listen(record: Mapping[str, Any]) -> None:
        runner.handle(record)

    return listen


def _hook_failed(log: EventLog, result: HookResult) -> None:
    if result.ok:
        return
    log.emit("hook.failed", f"hook {literal(result.argv[0], 200)} failed for "
             f"{result.argv[1] if len(result.argv) > 1 else '?'}", program=result.argv[0],
             event=result.argv[1] if len(result.argv) > 1 else None,
             returncode=result.returncode, timed_out=result.timed_out,
             output=result.output[:4096], error=result.error)


def open_event_log(clock: Clock, path: Path | None = None, *, syslog: str = "",
                   facility: str = "authpriv", stderr: bool = False,
                   ) -> tuple[EventLog, list[str]]:
    """The event log as configured (``path`` None: the state folder), and problems with
    the configuration (a bad syslog target is reported, the rest still works)."""
    problems: list[str] = []
    outputs: list[Output] = [JsonLinesFile(path if path is not None else default_path())]
    if syslog:
        try:
            outputs.append(SyslogOutput(SyslogTarget.parse(syslog), facility))
        except (ValueError, KeyError) as exc:
            problems.append(f"syslog disabled: {exc}")
    if stderr:
        outputs.append(StderrOutput())
    from camguard.platform import origin_resolver  # lazily: not at the CLI's import time

    return EventLog(clock, outputs, origins=origin_resolver()), problems
