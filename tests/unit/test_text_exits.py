"""The one escaping for text that leaves camguard: JSON that a line splitter reads as one
record, and plain values (syslog) with line and bidi controls made visible."""

from __future__ import annotations

import json

import pytest

from camguard.core.text import escape_unsafe, json_text

CONTROLS = ["\u2028", "\u2029", "\x85", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c",
            "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u061c", "\x7f",
            "\x9b", "\x1b", "\n", "\x0b", "\x1c"]


@pytest.mark.parametrize("ch", CONTROLS)
def test_json_text_is_one_line_and_reads_back_exactly(ch: str) -> None:
    name = f"zoom{ch}rm -rf{ch}\\"
    line = json_text({"name": name, "n": 1}, separators=(",", ":"))
    assert len(line.splitlines()) == 1 and ch not in line
    assert json.loads(line) == {"name": name, "n": 1}
    pretty = json_text([{"name": name}], indent=2)
    assert ch not in pretty.replace("\n", "") and json.loads(pretty) == [{"name": name}]


def test_json_text_keeps_readable_text_readable() -> None:
    assert json_text({"name": "café 会议 🎥"}) == '{"name": "café 会议 🎥"}'


def test_escape_unsafe_makes_every_control_visible() -> None:
    assert escape_unsafe("a\u2028b\u202ec\x85d\x1b\udcff é") == \
        "a\\u2028b\\u202ec\\x85d\\x1b\\xff é"
    assert all(ch not in escape_unsafe("".join(CONTROLS)) for ch in CONTROLS)
