"""The composition root: builds every long-lived object once (no singletons, no module
state), for the tray, the service and the commands alike.

``detection``: the usage sources and the monitor. ``settings``: the settings in force for
each program. ``outputs``: the event log, syslog and hook runner.
"""

from __future__ import annotations

from camguard.app.detection import Detection, build_detection
from camguard.app.outputs import (
    EventOutputs,
    build_event_outputs,
    service_outputs,
    tray_outputs,
)

__all__ = ["Detection", "EventOutputs", "build_detection", "build_event_outputs",
           "service_outputs", "tray_outputs"]
