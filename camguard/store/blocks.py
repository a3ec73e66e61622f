"""Active blocks on disk (``blocks.json``, 0600), so a timed block expires even across restarts.

Written atomically (a private temporary file, fsync, ``os.replace``): a crash leaves the old
file or the new one, never half of one. A file that cannot be parsed is moved aside (kept
for the user, never deleted) and reported; camguard then starts with no recorded blocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from camguard.core.blocks import (
    MAX_TIMESTAMP,
    ActiveBlock,
    BlockOptions,
    StepKind,
    UndoStep,
)
from camguard.core.models import DeviceKind
from camguard.store import paths
from camguard.store.files import aside_path, exclusive, write_private

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "blocks.json"
MAX_SAVED_FIELDS = 32  # a step's saved state: a handful of plain values


class BlockFileError(ValueError):
    """The file is not a blocks file this version understands."""


class JsonBlockStore:
    """A :class:`camguard.core.blocks.BlockStore` in one JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else paths.state_dir() / FILE_NAME

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with exclusive(self.path):
            yield

    def load(self) -> tuple[list[ActiveBlock], list[str]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [f"cannot read {self.path}: {exc}"]
        try:
            return decode(raw), []
        except (ValueError, RecursionError) as exc:  # JSON, UTF-8 and shape errors alike
            return [], [self._move_aside(exc)]

    def save(self, blocks: Sequence[ActiveBlock]) -> None:
        write_private(self.path, encode(blocks))

    def _move_aside(self, exc: Exception) -> str:
        aside = aside_path(self.path)
        try:
            os.replace(self.path, aside)
        except OSError as move_exc:
            return (f"{self.path} is unreadable ({exc}) and could not be moved aside "
                    f"({move_exc}); starting with no recorded blocks")
        log.warning("corrupt blocks file moved to %s: %s", aside, exc)
        return (f"{self.path} was unreadable ({exc}); kept as {aside.name}; starting with no "
                "recorded blocks (`camguard unblock all` still releases blocked devices)")


# -- JSON shape ------------------------------------------------------------------------------
def encode(blocks: Sequence[ActiveBlock]) -> bytes:
    doc = {"version": FORMAT_VERSION, "blocks": [_block_dict(b) for b in blocks]}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")


def decode(raw: bytes) -> list[ActiveBlock]:
    doc = json.loads(raw.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise BlockFileError("not a version-1 blocks file")
    items = doc.get("blocks")
    if not isinstance(items, list):
        raise BlockFileError("'blocks' must be a list")
    out = [_block(item) for item in items]
    if len({b.kind for b in out}) != len(out):
        raise BlockFileError("a device kind is listed twice")
    return out


def _block_dict(b: ActiveBlock) -> dict[str, Any]:
    return {
        "kind": b.kind.value,
        "since": b.since,
        "until": b.until,
        "options": {"unbind_usb": b.options.unbind_usb, "persistent": b.options.persistent},
        "steps": [_step_dict(s) for s in b.steps],
        "owner": b.owner,
    }


def _step_dict(s: UndoStep) -> dict[str, Any]:
    # The platform's saved state is JSON object text: kept in the file as that object.
    saved = None if s.saved is None else json.loads(s.saved)
    return {"kind": s.kind.value, "target": s.target, "saved": saved, "data": s.data}


def _block(item: Any) -> ActiveBlock:
    if not isinstance(item, dict):
        raise BlockFileError("a block must be an object")
    try:
        kind = DeviceKind(item["kind"])
        since = min(_number(item["since"]), MAX_TIMESTAMP)
        until = None if item.get("until") is None else _number(item["until"])
        if until is not None and until > MAX_TIMESTAMP:
            # Written by a version that took {"seconds": 1e300}: no date can show it, and
            # it means "never", so it is kept as a block until turned back on.
            log.warning("a %s block's end %r is past any date; kept until turned back on",
                        item.get("kind"), until)
            until = None
        opts = item.get("options") or {}
        if not isinstance(opts, dict):
            raise BlockFileError("'options' must be an object")
        options = BlockOptions(unbind_usb=opts.get("unbind_usb") is True,
                               persistent=opts.get("persistent") is True)
        steps = item.get("steps", [])
        if not isinstance(steps, list):
            raise BlockFileError("'steps' must be a list")
        owner = item.get("owner")  # absent in files of older versions: an admin's
        return ActiveBlock(kind, since, until, tuple(_step(s) for s in steps), options,
                           None if owner is None else _int(owner))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BlockFileError):
            raise
        raise BlockFileError(f"bad block entry: {exc!r}") from exc


def _step(item: Any) -> UndoStep:
    if not isinstance(item, dict):
        raise BlockFileError("a step must be an object")
    target, data = item.get("target", ""), item.get("data", "")
    if not isinstance(target, str) or not isinstance(data, str):
        raise BlockFileError("a step's target and data must be strings")
    saved_raw = item.get("saved")
    saved = None
    if saved_raw is not None:
        # What the platform saved is its own to read (platform/linux/node_state.py);
        # here only its shape: a small object of plain values.
        if not isinstance(saved_raw, dict) or len(saved_raw) > MAX_SAVED_FIELDS or not all(
                isinstance(v, str | int | float | bool) or v is None
                for v in saved_raw.values()):
            raise BlockFileError("'saved' must be a small object of plain values")
        saved = json.dumps(saved_raw, sort_keys=True)
    return UndoStep(StepKind(item["kind"]), target, saved, data)


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise BlockFileError(f"not a number: {v!r}")
    return float(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise BlockFileError(f"not a non-negative integer: {v!r}")
    return v
