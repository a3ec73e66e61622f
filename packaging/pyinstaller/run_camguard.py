"""PyInstaller entry point: behaves exactly like the ``camguard`` console script."""

import sys

from camguard.cli import main

if __name__ == "__main__":
    sys.exit(main())
