"""The system service put together and run: detection over every account, history with
tamper evidence, rules enforced, the kill switch, the parental lock and the socket API.

Files (each folder injectable for tests and images): the history database, the parental
lock and the service lock in ``CAMGUARD_DATA_DIR`` (default /var/lib/camguard); blocks,
saved node modes and the event log in ``CAMGUARD_STATE_DIR`` (same default); the service's
rules in ``CAMGUARD_CONFIG_DIR`` (default /etc/camguard, read-only to the service).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from camguard import __version__
from camguard.app import EventOutputs, build_detection, service_outputs
from camguard.cli.common import CliError, detection_settings
from camguard.core.blocks import (
    ActiveBlock,
    BlockManager,
    BlockOptions,
    BlockReport,
    BlockTarget,
)
from camguard.core.clock import Clock
from camguard.core.models import MonitorEvent, UsageEvent
from camguard.core.rules import Mode, Rule
from camguard.core.rules_json import rule_to_json
from camguard.core.serialize import event_dict, rfc3339
from camguard.core.settings import DetectionSettings
from camguard.core.text import json_safe
from camguard.platform import current
from camguard.platform.base import ProcessKiller
from camguard.platform.clock import SystemClock, local_zone
from camguard.service.api import ServiceApi
from camguard.service.enforcement import NO_OPTIONS, Enforcement
from camguard.service.hub import EventHub, Outgoing
from camguard.service.server import ServiceRunningError, ServiceServer
from camguard.store import paths
from camguard.store.blocks import JsonBlockStore
from camguard.store.eventlog import EventLog
from camguard.store.files import held_by_us
from camguard.store.hashing import ExeHasher
from camguard.store.history import HistorySink, HistoryStore
from camguard.store.lock import LockGuard
from camguard.store.policy import ManagedPolicy, effective_settings
from camguard.store.rules import FILE_NAME as RULES_FILE
from camguard.store.rules import RuleFile
from camguard.store.tamper import RunLog, ServiceHistory, StartReport

log = logging.getLogger(__name__)

TICK = 1.0  # how often the main loop looks at heartbeats and block expiry


class ServiceRules:
    """The rules the service enforces: the managed policy's, then its own file's (root
    writes it; an unprivileged account cannot). Read again for each decision, so an edit
    takes effect at the next usage. "once" rules are spent in memory."""

    def __init__(self, rule_file: RuleFile, policy: ManagedPolicy) -> None:
        self._file = rule_file
        self._policy = policy
        self._spent: set[str] = set()
        self._lock = threading.Lock()

    def _load(self) -> tuple[list[Rule], Mode, list[str], str | None]:
        status = self._policy.load()
        contents = self._file.load()
        user = {} if contents.mode is None else {"mode": contents.mode.value}
        eff = effective_settings(user, status.policy, contents.rules)
        with self._lock:
            rules = [r for r in eff.rules if r.id not in self._spent]
        return rules, eff.mode, [*eff.problems, *contents.problems], status.error

    def current(self) -> tuple[Sequence[Rule], Mode]:
        rules, mode, _problems, _error = self._load()
        return rules, mode

    def spend(self, rule: Rule) -> None:
        with self._lock:
            self._spent.add(rule.id)

    def listing(self) -> dict[str, Any]:
        rules, mode, problems, error = self._load()
        return {"mode": mode.value,
                "rules": [{**rule_to_json(r), "origin": r.origin.value} for r in rules],
                "problems": [json_safe(p) for p in problems], "policy_error": error}


class SerialBlocks:
    """The BlockManager for many threads (connections, the enforcement worker, the main
    loop): it is meant for one thread at a time per process, so calls take turns."""

    def __init__(self, manager: BlockManager) -> None:
        self._manager = manager
        self._lock = threading.Lock()

    def block(self, target: BlockTarget, duration: float | None,
              options: BlockOptions = NO_OPTIONS) -> BlockReport:
        with self._lock:
            return self._manager.block(target, duration, options)

    def unblock(self, target: BlockTarget) -> BlockReport:
        with self._lock:
            return self._manager.unblock(target)

    def active(self) -> tuple[list[ActiveBlock], list[str]]:
        with self._lock:
            return self._manager.active()

    def expire_due(self) -> BlockReport:
        with self._lock:
            return self._manager.expire_due()

    def next_expiry(self) -> float | None:
        with self._lock:
            return self._manager.next_expiry()


@contextlib.contextmanager
def _only_service(data: Path) -> Iterator[None]:
    """One service per data folder: two would close each other's sessions as orphans."""
    with held_by_us(data / "service.lock") as ours:
        if not ours:
            raise CliError(f"another camguard service already uses {data}")
        yield


def _announce(events: EventLog, start: StartReport, orphans: int) -> None:
    if start.gap is not None:
        events.emit("monitoring.gap", start.gap.message, since=rfc3339(start.gap.start),
                    until=rfc3339(start.gap.end), reason="unclean-stop",
                    sessions_closed=orphans)
    if start.policy_change is not None:
        events.emit("policy.loaded", start.policy_change.message, changed=True)
    events.emit("camguard.started", f"camguard {__version__} service started",
                version=__version__, camguard_pid=os.getpid(), service=True)


def _hub_sink(hub: EventHub) -> Any:
    def sink(ev: MonitorEvent) -> None:
        hub.publish(Outgoing(event_dict(ev), ev.usage if isinstance(ev, UsageEvent) else None))

    return sink


def run_service(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("camguard: warning: the service is not running as root: it sees only its own "
              "account's processes and cannot block devices", file=sys.stderr)
    settings = replace(detection_settings(args), watch_sound_server=False)
    data = paths.private_dir(paths.service_data_dir())
    state = paths.private_dir(paths.service_state_dir())
    config = paths.service_config_dir()
    with _only_service(data):
        return _run(args, settings, data, state, config)


def _run(args: argparse.Namespace, settings: Any, data: Path, state: Path, config: Path
         ) -> int:
    clock: Clock = SystemClock()
    history = HistoryStore(data / "history.sqlite3", clock)
    if history.warning:
        log.warning("%s", history.warning)
    runlog = RunLog(history.db, clock, policy_path=args.policy_file)
    policy = ManagedPolicy(current().policy_source(args.policy_file))
    outputs = _outputs(args, policy, clock, state)
    events = outputs.log
    detection = build_detection(settings)
    monitor = detection.monitor()
    killer, blocks = _kill_switch(settings, clock, state)
    lock = LockGuard(data / "lock.json", clock, base=args.lock_backoff)
    rules = ServiceRules(RuleFile(args.rules_file or config / RULES_FILE), policy)
    hub = EventHub()
    enforcement = Enforcement(rules, killer, blocks, clock, hasher=ExeHasher(),
                              decisions=history, publish=hub.publish, tz=local_zone())
    api = ServiceApi(state=lambda: monitor.state, history=ServiceHistory(history),
                     killer=killer, blocks=blocks, lock=lock, enforcement=enforcement,
                     hub=hub, clock=clock, rules=rules.listing, version=__version__,
                     admin_group=args.admin_group)
    address = args.socket or current().service_transport().default_address()
    server = ServiceServer(address, api, admin_group=args.admin_group,
                           max_clients=args.max_clients)
    stop = threading.Event()
    why = ["stopped"]

    def on_signal(signum: int, _frame: object) -> None:
        why[0] = f"stopped by {signal.Signals(signum).name}"
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except (ServiceRunningError, OSError) as exc:
        history.close()
        events.close()
        raise CliError(f"cannot serve on {server.path}: {exc}") from None
    try:
        start = runlog.begin(os.getpid())
        outputs.start_hooks()
        _announce(events, start, history.close_orphans(clock.now()))
        for sink in (HistorySink(history), _hub_sink(hub), events.monitor_sink, enforcement):
            monitor.add_sink(sink)
        enforcement.start()
        monitor.start()
        blocks.expire_due()
        _loop(stop, heartbeat=args.heartbeat, clock=clock, history=history, runlog=runlog,
              events=events, blocks=blocks)
    finally:
        server.stop()
        monitor.stop()
        enforcement.stop()
        history.heartbeat()  # sessions still open end here when the next run closes them
        runlog.end(why[0])
        outputs.stop(why[0])
        history.close()
    return 0


def _kill_switch(settings: DetectionSettings, clock: Clock, state: Path
                 ) -> tuple[ProcessKiller, SerialBlocks]:
    platform = current()
    # Root acts itself: no privilege prompt, and no sound server of its own to mute at.
    killer = platform.killer(settings.sound_server_exes, escalate=False)
    enforcer = platform.enforcer(settings, killer, mute=False, escalate=False,
                                 state_file=state / "helper-nodes.json")
    return killer, SerialBlocks(BlockManager(clock, JsonBlockStore(state / "blocks.json"),
                                             enforcer))


def _outputs(args: argparse.Namespace, policy: ManagedPolicy, clock: Clock, state: Path
             ) -> EventOutputs:
    """The event log, syslog and hook: the tray's, from the managed policy and the flags."""
    outputs = service_outputs(args.events_file, policy.load(), clock, state)
    for problem in outputs.problems:
        log.warning("%s", problem)
    return outputs


def _loop(stop: threading.Event, *, heartbeat: float, clock: Clock, history: HistoryStore,
          runlog: RunLog, events: EventLog, blocks: SerialBlocks) -> None:
    next_beat = clock.monotonic() + heartbeat
    while not stop.wait(min(TICK, heartbeat)):
        if clock.monotonic() >= next_beat:
            next_beat = clock.monotonic() + heartbeat
            try:
                history.heartbeat()
                change = runlog.beat()
                if change is not None:
                    events.emit("policy.loaded", change.message, changed=True)
            except Exception:
                log.exception("writing the heartbeat failed")
        expiry = blocks.next_expiry()
        if expiry is not None and clock.now() >= expiry:
            report = blocks.expire_due()
            log.info("timed block ended: %s", report.result.message)
