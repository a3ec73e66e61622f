"""pipe_server.PipeIO with pywin32: overlapped named-pipe I/O so that every wait has a
timeout and another thread can cancel it. NEVER RUN: written from the Win32 documentation
(CreateNamedPipeW, ConnectNamedPipe, ReadFile/WriteFile with OVERLAPPED, CancelIoEx,
PeekNamedPipe, LookupAccountSidW/LookupAccountNameW) and pywin32's wrappers; there is no
Windows machine here. Every decision it feeds is in pipe_server.py and pipe_authz.py.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

from camguard.platform.windows.pipe import (
    PIPE_NAME,
    PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_SDDL,
    NamedPipeTransport,
)
from camguard.platform.windows.pipe_authz import PipeCaller

BUFFER = 65536
ERROR_BROKEN_PIPE = 109
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_PIPE_CONNECTED = 535
ERROR_OPERATION_ABORTED = 995
ERROR_IO_PENDING = 997
ERROR_PIPE_BUSY = 231
SECURITY_SQOS_PRESENT = 0x00100000
SECURITY_IDENTIFICATION = 0x00010000  # SecurityIdentification << 16
GONE = {ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED, ERROR_OPERATION_ABORTED}
WAIT_OBJECT_0 = 0
INFINITE = 0xFFFFFFFF


class Win32PipeIO:
    def __init__(self, name: str = PIPE_NAME) -> None:
        import pywintypes  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32api  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32event  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32file  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32pipe  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32security  # type: ignore[import-not-found, import-untyped, unused-ignore]

        self.name = name
        self.pywintypes, self.win32api, self.win32event = pywintypes, win32api, win32event
        self.win32file, self.win32pipe, self.win32security = win32file, win32pipe, win32security
        self.kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined, unused-ignore]

    def _overlapped(self) -> Any:
        ov = self.pywintypes.OVERLAPPED()
        ov.hEvent = self.win32event.CreateEvent(None, True, False, None)
        return ov

    def _wait(self, handle: Any, ov: Any, timeout: float | None) -> int:
        """Bytes moved by the overlapped call; TimeoutError (the call cancelled) past
        ``timeout``; b""-worthy OSError codes are the caller's."""
        ms = INFINITE if timeout is None else max(0, int(timeout * 1000))
        if self.win32event.WaitForSingleObject(ov.hEvent, ms) != WAIT_OBJECT_0:
            self.cancel(handle)
            with contextlib.suppress(self.pywintypes.error):
                self.win32file.GetOverlappedResult(handle, ov, True)  # let the cancel land
            raise TimeoutError("timed out")
        return int(self.win32file.GetOverlappedResult(handle, ov, False))

    def create(self, first: bool) -> Any:
        sec = self.win32security
        sa = self.pywintypes.SECURITY_ATTRIBUTES()
        sa.SECURITY_DESCRIPTOR = sec.ConvertStringSecurityDescriptorToSecurityDescriptor(
            PIPE_SDDL, sec.SDDL_REVISION_1)
        mode = self.win32pipe.PIPE_ACCESS_DUPLEX | self.win32file.FILE_FLAG_OVERLAPPED
        if first:
            mode |= self.win32file.FILE_FLAG_FIRST_PIPE_INSTANCE
        pipe_mode = (self.win32pipe.PIPE_TYPE_BYTE | self.win32pipe.PIPE_READMODE_BYTE
                     | self.win32pipe.PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS)
        try:
            return self.win32pipe.CreateNamedPipe(
                self.name, mode, pipe_mode, self.win32pipe.PIPE_UNLIMITED_INSTANCES, BUFFER,
                BUFFER, 0, sa)
        except self.pywintypes.error as exc:
            raise OSError(exc.winerror, f"CreateNamedPipe {self.name}: {exc.strerror}") from None

    def wait_connect(self, handle: Any, timeout: float) -> bool:
        ov = self._overlapped()
        try:
            rc = self.win32pipe.ConnectNamedPipe(handle, ov)
        except self.pywintypes.error as exc:
            raise OSError(exc.winerror, f"ConnectNamedPipe: {exc.strerror}") from None
        if rc == ERROR_PIPE_CONNECTED:  # the client came between create and connect
            return True
        try:
            self._wait(handle, ov, timeout)
        except TimeoutError:
            return False
        return True

    def caller(self, handle: Any) -> PipeCaller:
        try:
            return NamedPipeTransport.caller(handle)
        except self.pywintypes.error as exc:
            raise OSError(exc.winerror, f"reading the client's token: {exc.strerror}") from None

    def account_name(self, sid: str) -> str:
        try:
            name, domain, _kind = self.win32security.LookupAccountSid(
                None, self.win32security.ConvertStringSidToSid(sid))
        except self.pywintypes.error as exc:
            raise OSError(exc.winerror, exc.strerror) from None
        return f"{domain}\\{name}" if domain else str(name)

    def account_sid(self, name: str) -> str | None:
        """The SID of a group or account name (None when there is none)."""
        try:
            sid, _domain, _kind = self.win32security.LookupAccountName(None, name)
        except self.pywintypes.error:
            return None
        return str(self.win32security.ConvertSidToStringSid(sid))

    # -- the client's side (pipe_client.py) -------------------------------------------------
    def open_client(self, timeout: float | None) -> Any:
        """CreateFile on the pipe (waiting up to ``timeout`` while every instance is busy),
        identification-level QoS: the server may learn who we are, never act as us."""
        wf = self.win32file
        ms = 0xFFFFFFFF if timeout is None else max(1, int(timeout * 1000))
        flags = (wf.FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION)
        for _attempt in range(2):
            try:
                return wf.CreateFile(self.name, wf.GENERIC_READ | wf.GENERIC_WRITE, 0, None,
                                     wf.OPEN_EXISTING, flags, None)
            except self.pywintypes.error as exc:
                if exc.winerror != ERROR_PIPE_BUSY:
                    raise OSError(exc.winerror, exc.strerror) from None
            try:
                self.win32pipe.WaitNamedPipe(self.name, ms)
            except self.pywintypes.error as exc:
                raise OSError(exc.winerror, exc.strerror) from None
        raise OSError(ERROR_PIPE_BUSY, "every instance of the pipe is busy")

    def server_sid(self, handle: Any) -> str:
        from camguard.platform.windows.pipe import process_sid

        try:
            pid = int(self.win32pipe.GetNamedPipeServerProcessId(handle))
        except self.pywintypes.error as exc:
            raise OSError(exc.winerror, exc.strerror) from None
        return process_sid(pid)

    def own_sid(self) -> str:
        import os

        from camguard.platform.windows.pipe import process_sid

        return process_sid(os.getpid())

    def read(self, handle: Any, size: int, timeout: float | None) -> bytes:
        buf = self.win32file.AllocateReadBuffer(size)
        ov = self._overlapped()
        try:
            self.win32file.ReadFile(handle, buf, ov)
            got = self._wait(handle, ov, timeout)
        except self.pywintypes.error as exc:
            if exc.winerror in GONE:
                return b""
            raise OSError(exc.winerror, f"ReadFile: {exc.strerror}") from None
        return bytes(buf[:got])

    def write(self, handle: Any, data: bytes, timeout: float | None) -> int:
        ov = self._overlapped()
        try:
            self.win32file.WriteFile(handle, data, ov)
            return self._wait(handle, ov, timeout)
        except self.pywintypes.error as exc:
            if exc.winerror in GONE:
                raise BrokenPipeError(exc.winerror, "the client went away") from None
            raise OSError(exc.winerror, f"WriteFile: {exc.strerror}") from None

    def gone(self, handle: Any) -> bool:
        try:
            self.win32pipe.PeekNamedPipe(handle, 0)
        except self.pywintypes.error:
            return True
        return False

    def cancel(self, handle: Any) -> None:
        # CancelIoEx cancels I/O another thread started on this handle (CancelIo would not).
        self.kernel32.CancelIoEx(ctypes.c_void_p(int(handle)), None)

    def close(self, handle: Any) -> None:
        with contextlib.suppress(self.pywintypes.error):
            self.win32pipe.DisconnectNamedPipe(handle)
        with contextlib.suppress(self.pywintypes.error):
            self.win32file.CloseHandle(handle)
