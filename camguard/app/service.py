"""The system service put together and run: detection over every account, history with
tamper evidence, rules enforced, the kill switch, the parental lock, the event outputs and
the socket API, each built here once.

Files (each folder injectable for tests and images, see store.paths): the history
database, the parental lock and the service lock in the service data folder
(/var/lib/camguard); blocks, saved node modes and the event log in its state folder (the
same); its rules in its config folder (/etc/camguard, read-only to the service).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camguard import __version__
from camguard.app.detection import build_detection, warm_origins
from camguard.app.freeze import JOURNAL as FREEZE_JOURNAL
from camguard.app.outputs import EventOutputs, service_outputs
from camguard.app.own_activity import OwnActivity, OwnActivityFilter
from camguard.app.service_parts import GatedKiller, SerialBlocks, ServiceRules
from camguard.core.blocks import BlockManager, ProcessKiller
from camguard.core.clock import Clock
from camguard.core.freeze import FreezeWhileAsking
from camguard.core.models import MonitorEvent, Usage, UsageEvent
from camguard.core.origin import ExeOrigin
from camguard.core.serialize import event_dict, rfc3339
from camguard.core.settings import DetectionSettings
from camguard.platform import current, origin_of, origin_resolver
from camguard.platform.clock import SystemClock, local_zone
from camguard.platform.process import RunningBinary, RunningScript
from camguard.service.accounts import AccountRules
from camguard.service.api import ServiceApi
from camguard.service.enforcement import Accounts, Enforcement
from camguard.service.hub import EventHub, Outgoing
from camguard.service.server import (
    ListeningTransport,
    ServiceRunningError,
    ServiceServer,
)
from camguard.store import paths
from camguard.store.blocks import JsonBlockStore
from camguard.store.eventlog import EventLog
from camguard.store.files import held_by_us
from camguard.store.hashing import ExeHasher, ScriptHasher
from camguard.store.history import HistorySink, HistoryStore
from camguard.store.parental_lock import LockGuard
from camguard.store.policy import ManagedPolicy
from camguard.store.rules import FILE_NAME as RULES_FILE
from camguard.store.rules import RuleFile
from camguard.store.tamper import RunLog, ServiceHistory, StartReport

log = logging.getLogger(__name__)

TICK = 1.0  # how often the main loop looks at heartbeats and block expiry


class ServiceError(Exception):
    """The service cannot run (another one uses the folder, the socket cannot be served)."""


@dataclass(frozen=True)
class ServiceOptions:
    """What the command line chooses (cli/service.py's flags)."""

    policy_file: Path
    admin_group: str
    rules_file: Path | None = None
    events_file: Path | None = None
    socket: Path | None = None
    heartbeat: float = 30.0
    max_clients: int = 64
    max_per_user: int = 8
    lock_backoff: float = 1.0


@dataclass
class Stop:
    """Set from a signal handler; the main loop ends and says why."""

    event: threading.Event = field(default_factory=threading.Event)
    why: str = "stopped"

    def request(self, why: str) -> None:
        self.why = why
        self.event.set()


def run_service(options: ServiceOptions, settings: DetectionSettings, stop: Stop) -> None:
    """Build the service in its folders and run it until ``stop`` is requested."""
    # Request threads build answers in Python; a thread waiting for the interpreter lock
    # (the monitor's, with a camera event) asks for it after this long, not the default
    # 5 ms (bench/service_abuse.py: camera events during a history flood).
    sys.setswitchinterval(0.001)
    folders = current().system_paths()  # /var/lib/camguard; %ProgramData%\camguard\...
    with contextlib.ExitStack() as claim:
        try:
            data = paths.private_dir(folders.service_data_dir())
            state = paths.private_dir(folders.service_state_dir())
            claim.enter_context(_only_service(data))
        except OSError as exc:  # not root: /var/lib/camguard or its lock file is root's
            where = exc.filename or folders.service_data_dir()
            root = not hasattr(os, "geteuid") or os.geteuid() == 0
            hint = "" if root else " (the service runs as root: sudo camguard service)"
            raise ServiceError(f"cannot use the service's folder: {where}: "
                               f"{exc.strerror or exc}{hint}") from None
        _run(options, settings, stop, data=data, state=state,
             config=folders.service_config_dir())


@contextlib.contextmanager
def _only_service(data: Path) -> Iterator[None]:
    """One service per data folder: two would close each other's sessions as orphans."""
    with held_by_us(data / "service.lock") as ours:
        if not ours:
            raise ServiceError(f"another camguard service already uses {data}")
        yield


def _run(o: ServiceOptions, settings: DetectionSettings, stop: Stop, *, data: Path,
         state: Path, config: Path) -> None:
    clock: Clock = SystemClock()
    # Binaries are hashed through each process's own link, never a path its owner chose.
    binary = RunningBinary()
    history = HistoryStore(data / "history.sqlite3", clock, hasher=ExeHasher(source=binary),
                           origin_of=origin_of)
    warm_origins()
    if history.warning:
        log.warning("%s", history.warning)
    runlog = RunLog(history.db, clock, policy_path=o.policy_file)
    policy = ManagedPolicy(current().policy_source(o.policy_file))
    outputs = _outputs(o, policy, clock, state)
    events = outputs.log
    monitor = (detection := build_detection(settings)).monitor()  # coverage: status's
    killer, blocks = _kill_switch(settings, clock, state)
    lock = LockGuard(data / "lock.json", clock, base=o.lock_backoff)
    rules = ServiceRules(RuleFile(o.rules_file or config / RULES_FILE), policy)
    hub = EventHub()
    transport = current().service_transport()
    # Windows' named pipe brings its own listener and account numbers (platform/windows).
    own = transport if isinstance(transport, ListeningTransport) else None
    # Each account's own rules, as its tray sends them (never read from its files).
    own_rules = AccountRules()
    accounts = Accounts(own_rules, lambda: monitor.state, rules.users_may_block,
                        **({"lookup": own.lookup} if own is not None else {}))
    enforcement = Enforcement(rules, killer, blocks, clock, hasher=ExeHasher(source=binary),
                              script_hasher=ScriptHasher(source=RunningScript()),
                              origin_of=origin_of, decisions=history, publish=hub.publish,
                              tz=local_zone(), accounts=accounts,
                              freeze=_freeze(rules, state),
                              freeze_on=rules.freeze_while_asking, answerers=hub)
    api = ServiceApi(state=lambda: monitor.state, history=ServiceHistory(history),
                     killer=killer, blocks=blocks, lock=lock, enforcement=enforcement,
                     hub=hub, clock=clock, rules=rules.listing, version=__version__,
                     admin_group=o.admin_group, users_may_block=rules.users_may_block,
                     origin=_usage_origin, sessions=history, accounts=own_rules,
                     coverage=detection.coverage,
                     **({"lookup": own.lookup} if own is not None else {}))
    address = o.socket or transport.default_address()
    server = ServiceServer(address, api, admin_group=o.admin_group,
                           peer=transport.peer_credentials, max_clients=o.max_clients,
                           per_uid=o.max_per_user,
                           listen=own.listener if own is not None else None)
    serving = False
    try:
        start = runlog.begin(os.getpid())
        outputs.start_hooks()
        _announce(events, start, history.close_orphans(clock.now()))
        # The service's own uses (its in-process helper holds a node for an instant while
        # blocking it) are not a user's session; it honours no account's claim.
        mine = OwnActivityFilter(monitor, OwnActivity(claims=False))
        for sink in (HistorySink(history), _hub_sink(hub), events.monitor_sink, enforcement):
            mine.add_sink(sink)
        enforcement.start()
        monitor.start()
        blocks.expire_due()
        # Serve only once watching and recorded: a client that gets an answer may rely on
        # it (a camera opened between the socket coming up and the monitor starting was
        # missed until the safety rescan, 30 s later; the run's policy change was not yet
        # in the history).
        try:
            server.start()
        except (ServiceRunningError, OSError) as exc:
            stop.why = f"cannot serve on {server.path}: {exc}"
            raise ServiceError(stop.why) from None
        serving = True
        _loop(stop.event, heartbeat=o.heartbeat, clock=clock, history=history, runlog=runlog,
              events=events, blocks=blocks)
    finally:
        if serving:
            server.stop()
        monitor.stop()
        enforcement.stop()  # continues what it paused and stops the freezer's watchdog
        history.heartbeat()  # sessions still open end here when the next run closes them
        runlog.end(stop.why)
        outputs.stop(stop.why)
        history.close()


def _freeze(rules: ServiceRules, state: Path) -> FreezeWhileAsking:
    """Freeze while asking as root (anyone's apps). Made first: it continues what a stopped
    service left paused (its journal in the state folder) before anything else runs."""
    freezer = current().freezer(state / FREEZE_JOURNAL, eager=rules.freeze_while_asking())
    return FreezeWhileAsking(freezer, own_pid=os.getpid())


def _kill_switch(settings: DetectionSettings, clock: Clock, state: Path
                 ) -> tuple[ProcessKiller, SerialBlocks]:
    platform = current()
    # Root acts itself: no privilege prompt, and no sound server of its own to mute at
    # (mute=False: microphones are muted at each logged-in account's, platform/linux/user_mic).
    killer = platform.killer(settings.sound_server_exes, escalate=False)
    # The blocker ends holders through a gate: an ordinary account's block may end only
    # what camguard.service.authorization allows (docs/security.md).
    gate = GatedKiller(killer)
    enforcer = platform.enforcer(settings, gate, mute=False, escalate=False,
                                 state_file=state / "helper-nodes.json")
    return killer, SerialBlocks(BlockManager(clock, JsonBlockStore(state / "blocks.json"),
                                             enforcer), gate)


def _outputs(o: ServiceOptions, policy: ManagedPolicy, clock: Clock, state: Path
             ) -> EventOutputs:
    """The event log, syslog and hook: the tray's, from the managed policy and the flags."""
    outputs = service_outputs(o.events_file, policy.load(), clock, state)
    for problem in outputs.problems:
        log.warning("%s", problem)
    return outputs


def _announce(events: EventLog, start: StartReport, orphans: int) -> None:
    if start.gap is not None:
        events.emit("monitoring.gap", start.gap.message, since=rfc3339(start.gap.start),
                    until=rfc3339(start.gap.end), reason="unclean-stop",
                    sessions_closed=orphans)
    if start.policy_change is not None:
        events.emit("policy.loaded", start.policy_change.message, changed=True)
    events.emit("camguard.started", f"camguard {__version__} service started",
                version=__version__, camguard_pid=os.getpid(), service=True)


def _usage_origin(usage: Usage) -> ExeOrigin | None:
    p = usage.process
    return None if p is None else origin_of(p)


def _hub_sink(hub: EventHub) -> Any:
    def sink(ev: MonitorEvent) -> None:
        # The monitor's thread: only an origin known without reading the file.
        p = ev.usage.process if isinstance(ev, UsageEvent) else None
        origin = None if p is None else origin_resolver().cached(p.pid, p.exe)
        hub.publish(Outgoing(event_dict(ev, origin),
                             ev.usage if isinstance(ev, UsageEvent) else None))

    return sink


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
