"""Entry point for `python -m camguard`."""

from camguard.cli import main

raise SystemExit(main())
