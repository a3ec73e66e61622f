"""The Windows backend: every capability of the platform façade built from Windows APIs
(winreg, Media Foundation's sensor activity monitor, Core Audio sessions, named pipes).

Each call into Windows is a thin adapter that takes its OS module (winreg, comtypes, pycaw,
win32 modules) in its constructor; every decision is a pure module that runs and is tested on
Linux with recorded data. Nothing here imports a Windows-only module at import time, so the
whole package imports on any OS (the contract tests import it on Linux with Fake* modules).
"""
