"""Composition root: builds every long-lived object once (no singletons, no module state)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camguard.core.clock import Clock
from camguard.core.settings import DetectionSettings
from camguard.core.state import GuardState, merge
from camguard.core.text import literal
from camguard.monitor import Monitor
from camguard.platform import create_sources
from camguard.platform.base import UsageSource
from camguard.platform.clock import SystemClock
from camguard.platform.hooks import HookConfig, HookResult, HookRunner
from camguard.platform.process import ProcessDescriber
from camguard.store.eventlog import EventLog, open_event_log
from camguard.store.policy import EffectiveSettings


@dataclass
class Detection:
    """The detection half of camguard: sources and the monitor over them."""

    settings: DetectionSettings
    sources: list[UsageSource]
    clock: SystemClock
    describer: ProcessDescriber

    def monitor(self) -> Monitor:
        return Monitor(self.sources, self.clock, settle=self.settings.settle,
                       rescan_interval=self.settings.rescan_interval)

    def look_once(self) -> GuardState:
        """One look through every source, without starting any watcher (``status``)."""
        return merge(source.snapshot() for source in self.sources)


def build_detection(settings: DetectionSettings) -> Detection:
    describer = ProcessDescriber()
    return Detection(settings, create_sources(settings, describer), SystemClock(), describer)


@dataclass
class EventOutputs:
    """The event log as the settings configure it, and the hook runner listening to it."""

    log: EventLog
    hooks: HookRunner | None
    problems: list[str]

    def start(self, version: str) -> None:
        if self.hooks is not None:
            self.hooks.start()
        self.log.started(version)

    def stop(self, reason: str = "requested") -> None:
        self.log.stopped(reason)
        if self.hooks is not None:
            # Queued hooks still run, each within its own timeout.
            self.hooks.stop(timeout=self.hooks.config.timeout * 2 + 5)
        self.log.close()


def build_event_outputs(eff: EffectiveSettings, clock: Clock,
                        events_file: Path | None = None) -> EventOutputs:
    """The JSON-lines log (``events_file``, else the setting, else the state folder), syslog
    and stderr as set, and the ``hook`` program run for ``hook_events``."""
    path = events_file
    if path is None and eff.value("events_file"):
        path = Path(eff.value("events_file"))
    log, problems = open_event_log(clock, path, syslog=eff.value("syslog"),
                                   facility=eff.value("syslog_facility"),
                                   stderr=eff.value("events_stderr"))
    hooks = None
    if eff.value("hook"):
        try:
            config = HookConfig(eff.value("hook"), frozenset(eff.value("hook_events")),
                                eff.value("hook_timeout") or 10.0)
        except ValueError as exc:
            problems.append(f"hook disabled: {exc}")
        else:
            runner = hooks = HookRunner(config, on_result=lambda r: _hook_failed(log, r))

            def listen(record: Mapping[str, Any]) -> None:
                runner.handle(record)

            log.add_listener(listen)
    return EventOutputs(log, hooks, problems)


def _hook_failed(log: EventLog, result: HookResult) -> None:
    if result.ok:
        return
    log.emit("hook.failed", f"hook {literal(result.argv[0], 200)} failed for "
             f"{result.argv[1] if len(result.argv) > 1 else '?'}", program=result.argv[0],
             event=result.argv[1] if len(result.argv) > 1 else None,
             returncode=result.returncode, timed_out=result.timed_out,
             output=result.output[:4096], error=result.error)
