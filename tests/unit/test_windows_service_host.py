"""camguard as a Windows service (platform/windows/winservice.py) with Fake pywin32 modules:
the Service Control Manager's stop and shutdown controls reach the service's own Stop (the
one app.service.run_service watches), failures reach the event log, and a process the SCM
did not start is told so. The MSI side is checked in tests/packaging (msiinfo)."""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest

from camguard.app.service import Stop
from camguard.cli import main
from camguard.platform import host_system_service
from camguard.platform.windows.winservice import (
    SERVICE,
    SERVICE_CONTROL_SHUTDOWN,
    SERVICE_CONTROL_STOP,
    host,
    stop_reason,
)

DEADLINE = 10.0


class FakeServiceFramework:
    """win32serviceutil.ServiceFramework as the SCM drives it: SvcRun reports RUNNING, calls
    SvcDoRun, reports STOPPED; controls arrive on another thread."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.statuses: list[str] = []

    def GetAcceptedControls(self) -> int:
        return 0

    def ReportServiceStatus(self, status: str) -> None:
        self.statuses.append(status)

    def SvcRun(self) -> None:
        self.ReportServiceStatus("RUNNING")
        try:
            self.SvcDoRun()  # type: ignore[attr-defined]
        finally:
            self.ReportServiceStatus("STOPPED")


class FakeServicemanager:
    def __init__(self, control: int | None = None, *, not_scm: bool = False) -> None:
        self.control = control
        self.not_scm = not_scm
        self.log: list[tuple[str, str]] = []
        self.hosted: Any = None
        self.instance: Any = None

    def Initialize(self, name: str, _msgs: object) -> None:
        self.log.append(("init", name))

    def PrepareToHostSingle(self, cls: type) -> None:
        self.hosted = cls

    def LogInfoMsg(self, text: str) -> None:
        self.log.append(("info", text))

    def LogErrorMsg(self, text: str) -> None:
        self.log.append(("error", text))

    def StartServiceCtrlDispatcher(self) -> None:
        if self.not_scm:
            err = Exception("StartServiceCtrlDispatcher", "The service process could not "
                            "connect to the service controller.")
            err.winerror = 1063  # type: ignore[attr-defined]
            raise err
        svc = self.instance = self.hosted(("camguard",))
        if self.control is not None:
            def control() -> None:
                {SERVICE_CONTROL_STOP: svc.SvcStop,
                 SERVICE_CONTROL_SHUTDOWN: svc.SvcShutdown}[self.control]()
            threading.Timer(0.05, control).start()
        svc.SvcRun()


def modules(manager: FakeServicemanager) -> tuple[Any, Any, Any]:
    serviceutil = types.SimpleNamespace(ServiceFramework=FakeServiceFramework)
    service = types.SimpleNamespace(SERVICE_STOP_PENDING="STOP_PENDING")
    return serviceutil, service, manager


@pytest.mark.parametrize(("control", "why"), [
    (SERVICE_CONTROL_STOP, "stopped by the Service Control Manager"),
    (SERVICE_CONTROL_SHUTDOWN, "Windows is shutting down")])
def test_scm_controls_stop_the_service_with_their_reason(control: int, why: str) -> None:
    stop = Stop()
    manager = FakeServicemanager(control)
    ran = threading.Event()

    def run() -> None:  # as app.service.run_service: until its Stop is requested
        ran.set()
        assert stop.event.wait(DEADLINE)

    host(run, stop.request, modules(manager))
    assert ran.is_set() and stop.why == why
    assert manager.instance.statuses == ["RUNNING", "STOP_PENDING", "STOPPED"]
    assert manager.log == [("init", "camguard"), ("info", "camguard service started"),
                           ("info", "camguard service stopped")]
    accepted = manager.instance.GetAcceptedControls()
    assert accepted & 0x1 and accepted & 0x4  # stop and shutdown
    assert manager.hosted._svc_name_ == SERVICE.name == "camguard"


def test_a_failing_run_reaches_the_event_log_and_the_scm() -> None:
    manager = FakeServicemanager()

    def run() -> None:
        raise RuntimeError("cannot serve on \\\\.\\pipe\\camguard: All pipe instances are busy")

    with pytest.raises(RuntimeError):
        host(run, Stop().request, modules(manager))
    assert manager.log[-1] == ("error", "camguard service failed: cannot serve on "
                               "\\\\.\\pipe\\camguard: All pipe instances are busy")
    assert manager.instance.statuses == ["RUNNING", "STOPPED"]


def test_a_process_the_scm_did_not_start_is_told_so() -> None:
    with pytest.raises(OSError, match="not started by the Service Control Manager") as got:
        host(lambda: None, Stop().request, modules(FakeServicemanager(not_scm=True)))
    assert got.value.errno == 1063


def test_stop_reasons_and_the_facade_off_windows(capsys: pytest.CaptureFixture[str]) -> None:
    assert stop_reason(0x4) is None  # INTERROGATE is no stop
    ran: list[bool] = []
    host_system_service(lambda: ran.append(True), Stop().request, scm=False)
    assert ran == [True]
    with pytest.raises(OSError, match="Windows' Service Control Manager only"):
        host_system_service(lambda: None, Stop().request, scm=True)
    assert main(["service", "--windows-service"]) == 1
    assert "--windows-service is for Windows' Service Control Manager only" in \
        capsys.readouterr().err
