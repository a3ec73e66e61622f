"""The tray application: the only package (with app wiring) that imports Qt."""

from camguard.ui import qtfix

# Before any signal is emitted: PySide6 6.12 on Python 3.11 drops a reference to True on
# every emit, which kills a long-running tray (see qtfix.py).
qtfix.install()
