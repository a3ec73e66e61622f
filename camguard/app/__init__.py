"""The composition root: builds every long-lived object once (no singletons, no module
state), for the tray, the service and the commands alike.

``detection``: the usage sources and the monitor. ``settings``: the settings in force for
each program. ``outputs``: the event log, syslog and hook runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camguard.app.detection import Detection, build_detection
    from camguard.app.outputs import (
        EventOutputs,
        build_event_outputs,
        service_outputs,
        tray_outputs,
    )

__all__ = ["Detection", "EventOutputs", "build_detection", "build_event_outputs",
           "service_outputs", "tray_outputs"]


def __getattr__(name: str) -> Any:
    """Each name imported on first use: ``camguard status`` needs the detection half, not
    the event outputs (syslog, hooks), and every command pays for what it imports (issue 16)."""
    if name in ("Detection", "build_detection"):
        from camguard.app import detection

        return getattr(detection, name)
    if name in ("EventOutputs", "build_event_outputs", "service_outputs", "tray_outputs"):
        from camguard.app import outputs

        return getattr(outputs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
