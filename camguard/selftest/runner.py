"""The selftest: use every camera and the microphone for real, prove camguard saw it, switch
them off, prove they are off, switch them on again, and prove everything is as it was.

:func:`run_selftest` is a plain blocking function (up to about a minute): the CLI calls it on
its main thread, the tray on a worker thread. It never raises for what it finds; each claim
becomes a :class:`~camguard.selftest.report.Check` that passed, failed or could not be proved
here, with the reason. Whatever happens, a block it switched on is switched off again.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from camguard.core.blocks import BlockManager
from camguard.core.settings import DetectionSettings
from camguard.core.text import literal
from camguard.monitor import Monitor
from camguard.platform import create_sources
from camguard.platform.clock import SystemClock
from camguard.platform.process import ProcessDescriber
from camguard.selftest.context import Cancelled, Context, SelftestOptions, Sightings
from camguard.selftest.phases import Run
from camguard.selftest.report import SelftestReport, Status

log = logging.getLogger(__name__)

__all__ = ["SelftestOptions", "SelftestReport", "Status", "run_selftest"]


def run_selftest(settings: DetectionSettings, *, blocks: BlockManager | None,
                 cancel: threading.Event | None = None,
                 progress: Callable[[str], None] | None = None,
                 options: SelftestOptions | None = None) -> SelftestReport:
    """Run every check and return the report (blocks for up to about a minute).

    ``blocks``: the kill switch to test (the CLI's or the app's BlockManager); None skips the
    block checks. ``cancel``: set it to stop early (anything switched off is switched on
    again first). ``progress`` receives a line before each step, on the calling thread.
    """
    report = SelftestReport(root=os.geteuid() == 0, started=time.time())
    ctx = Context(settings, report, options or SelftestOptions(), cancel or threading.Event(),
                  progress or (lambda line: log.info("selftest: %s", line)), Sightings())
    try:
        if not sys.platform.startswith("linux"):
            report.add("selftest", "", Status.NOT_PROVABLE,
                       "the selftest works on Linux only for now")
            return report
        try:
            _start_monitor(ctx)
            run = Run(ctx, blocks)
            run.baseline()
            run.block_and_restore()
        except Cancelled:
            report.add("selftest.cancelled", "", Status.FAILED,
                       "cancelled before every check ran (anything switched off was switched "
                       "on again: see kill-switch.off)")
        except Exception as exc:  # a bug must still give a report (blocks are lifted inside)
            log.exception("selftest failed")
            report.add("selftest.internal", "", Status.FAILED,
                       f"internal error: {literal(str(exc) or type(exc).__name__, 300)}")
        finally:
            if ctx.monitor is not None:
                ctx.monitor.stop()
    finally:
        report.finished = time.time()
    return report


def _start_monitor(ctx: Context) -> None:
    """The normal detection sources, watched the normal way, with a sink of our own."""
    s = ctx.settings
    ctx.step("starting detection")
    try:
        monitor = Monitor(create_sources(s, ProcessDescriber()), SystemClock(), settle=s.settle,
                          rescan_interval=s.rescan_interval)
        monitor.add_sink(ctx.sightings.sink)
        monitor.start()
    except Exception as exc:
        log.exception("selftest: the monitor did not start")
        ctx.monitor_problem = literal(str(exc) or type(exc).__name__, 200)
        return
    ctx.monitor = monitor
