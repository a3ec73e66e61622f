"""camguard as a Windows service: the Service Control Manager starts ``camguard.exe service
--windows-service`` (the MSI's ServiceInstall row), and this module hosts the same service
composition as Linux's root service (camguard.app.service.run_service, given as ``run``)
under pywin32's win32serviceutil.ServiceFramework.

The host only translates: SCM controls become the service's stop request (with the reason
the run log records), the run's end or failure becomes the service status and an event-log
line. :func:`stop_reason` and :data:`SERVICE` are pure and tested on Linux; the pywin32
class is built by :func:`service_class` and is NEVER RUN here (there is no Windows machine);
it follows pywin32's documented ServiceFramework (SvcDoRun, SvcStop, SvcShutdown,
GetAcceptedControls) and the frozen-executable hosting pattern (servicemanager.Initialize,
PrepareToHostSingle, StartServiceCtrlDispatcher).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SERVICE_CONTROL_STOP = 0x1
SERVICE_CONTROL_SHUTDOWN = 0x5
SERVICE_CONTROL_PRESHUTDOWN = 0xF
SERVICE_ACCEPT_STOP = 0x1
SERVICE_ACCEPT_SHUTDOWN = 0x4


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """What the MSI registers and the host announces (one definition: packaging/windows'
    check_msi.py compares the MSI's ServiceInstall row with these)."""

    name: str = "camguard"
    display_name: str = "camguard"
    description: str = ("Watches, records and enforces camera and microphone use for every "
                        "account; serves \\\\.\\pipe\\camguard to camguard's tray and commands")
    # Administrators (S-1-5-32-544) control every account, as camguard-admins does on Linux.
    arguments: str = "service --windows-service --admin-group S-1-5-32-544"
    account: str = "LocalSystem"


SERVICE = ServiceFacts()


def stop_reason(control: int) -> str | None:
    """The stop request's reason for an SCM control; None for controls that are no stop."""
    return {SERVICE_CONTROL_STOP: "stopped by the Service Control Manager",
            SERVICE_CONTROL_SHUTDOWN: "Windows is shutting down",
            SERVICE_CONTROL_PRESHUTDOWN: "Windows is shutting down"}.get(control)


Run = Callable[[], None]
RequestStop = Callable[[str], None]


def load_modules() -> tuple[Any, Any, Any]:
    """(win32serviceutil, win32service, servicemanager): ImportError without pywin32."""
    import servicemanager  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import win32service  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import win32serviceutil  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return win32serviceutil, win32service, servicemanager


def service_class(run: Run, request_stop: RequestStop, modules: tuple[Any, Any, Any]) -> type:
    """The ServiceFramework subclass that runs ``run`` (blocking until the service stops)
    and turns SCM controls into ``request_stop(reason)``."""
    serviceutil, service, manager = modules

    class CamguardService(serviceutil.ServiceFramework):  # type: ignore[misc, name-defined]
        _svc_name_ = SERVICE.name
        _svc_display_name_ = SERVICE.display_name
        _svc_description_ = SERVICE.description

        def GetAcceptedControls(self) -> int:
            return int(super().GetAcceptedControls()) | SERVICE_ACCEPT_STOP \
                | SERVICE_ACCEPT_SHUTDOWN

        def SvcStop(self) -> None:
            self.ReportServiceStatus(service.SERVICE_STOP_PENDING)
            request_stop(stop_reason(SERVICE_CONTROL_STOP) or "stopped")

        def SvcShutdown(self) -> None:
            self.ReportServiceStatus(service.SERVICE_STOP_PENDING)
            request_stop(stop_reason(SERVICE_CONTROL_SHUTDOWN) or "shutdown")

        def SvcDoRun(self) -> None:
            # ServiceFramework.SvcRun reported SERVICE_RUNNING before calling this, and
            # reports SERVICE_STOPPED when it returns.
            manager.LogInfoMsg(f"{SERVICE.name} service started")
            try:
                run()
            except Exception as exc:
                log.exception("the service failed")
                manager.LogErrorMsg(f"{SERVICE.name} service failed: {exc}")
                raise
            manager.LogInfoMsg(f"{SERVICE.name} service stopped")

    return CamguardService


def host(run: Run, request_stop: RequestStop, modules: tuple[Any, Any, Any] | None = None
         ) -> None:
    """Hand this process to the Service Control Manager (blocks until the service stops).
    Only a process the SCM started may call this: StartServiceCtrlDispatcher fails with
    ERROR_FAILED_SERVICE_CONTROLLER_CONNECT (1063) otherwise, raised as OSError."""
    modules = modules if modules is not None else load_modules()
    cls = service_class(run, request_stop, modules)
    manager = modules[2]
    manager.Initialize(SERVICE.name, None)
    manager.PrepareToHostSingle(cls)
    try:
        manager.StartServiceCtrlDispatcher()
    except Exception as exc:  # pywintypes.error is not an OSError
        code = getattr(exc, "winerror", None)
        if code is None:
            raise  # the service's own failure, logged by SvcDoRun
        raise OSError(code, "not started by the Service Control Manager (run `camguard "
                      "service` without --windows-service in a console)") from exc
