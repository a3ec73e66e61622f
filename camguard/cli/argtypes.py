"""Argument types that speak the user's words: an enum by its values, a dashed value kept.

argparse names the ``type`` callable in its errors ("invalid BlockTarget value") and prints
``choices`` with ``repr`` ("<Mode.ASK: 'ask'>"); a value that starts with a dash ("--for
-5m") is taken for an option ("expected one argument") before the type can explain why it
is wrong (issue 17). A file the user names must exist: a mistyped ``--config`` or
``--policy-file`` used to be ignored without a word.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name); the
# annotations here are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import Enum
    from typing import TypeVar

    E = TypeVar("E", bound=Enum)

# Options whose value may start with a dash and deserve the value's own error message.
DASHED_VALUE_OPTIONS = frozenset({"--for", "--since", "--until", "--duration", "--limit",
                                  "--create-time", "--heartbeat", "--lock-backoff",
                                  "--max-clients", "--max-per-user"})


def choice_of(enum: type[E]) -> Callable[[str], E]:
    """An argparse ``type`` for ``enum`` that accepts and lists its values."""
    values = [str(m.value) for m in enum]

    def parse(text: str) -> E:
        try:
            return enum(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not one of: {', '.join(values)}") from None

    return parse


def existing_file(text: str) -> Path:
    """An argparse ``type`` for a file the user names: it must be there (exit 2 if not)."""
    path = Path(text)
    try:
        there = path.exists()
    except OSError as exc:  # a folder on the way is unreadable
        raise argparse.ArgumentTypeError(f"cannot look at {text!r}: {exc.strerror or exc}"
                                         ) from None
    if not there:
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def metavar_of(enum: type[Enum]) -> str:
    """``{a,b,c}``, as argparse shows plain string choices."""
    return "{" + ",".join(str(m.value) for m in enum) + "}"


def join_dashed_values(argv: Sequence[str]) -> list[str]:
    """``--for -5m`` -> ``--for=-5m``, so the duration parser, not argparse, says why it is
    wrong. Only for :data:`DASHED_VALUE_OPTIONS` and a value that starts with dash-digit."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if (token in DASHED_VALUE_OPTIONS and i + 1 < len(argv)
                and re.match(r"-[0-9.]", argv[i + 1])):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out
