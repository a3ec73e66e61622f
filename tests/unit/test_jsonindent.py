"""The indented JSON writer (core/jsonindent.py) writes exactly what json.dumps writes, and
hands everything it does not cover back to json.dumps (issue 16)."""

from __future__ import annotations

import enum
import json
import random

import pytest

from camguard.core.jsonindent import Unsupported, dumps_indented
from camguard.core.text import json_text

HOSTILE = ["", "plain", "<b>markup</b>", "\x00\x1b[31m\x7f\x85", "\u2028\u2029\u202e",
           "\udcff\udc80 lone surrogates", "quote \" back \\ slash", "é日本🎥", "x" * 65536]
SCALARS: list[object] = [None, True, False, 0, -1, 2**70, 1.5, -0.0, 1e300, 5e-324,
                         float("nan"), float("inf"), float("-inf"), *HOSTILE]


def reference(obj: object, indent: int) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=indent)


def random_doc(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return rng.choice(SCALARS)
    if roll < 0.7:
        return [random_doc(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if roll < 0.75:
        return tuple(random_doc(rng, depth + 1) for _ in range(rng.randrange(0, 3)))
    return {rng.choice(HOSTILE[:8]) + str(i): random_doc(rng, depth + 1)
            for i in range(rng.randrange(0, 4))}


@pytest.mark.parametrize("indent", [0, 1, 2, 4])
def test_the_same_text_as_json_dumps(indent: int) -> None:
    rng = random.Random(indent)  # noqa: S311 (test data)
    for _ in range(400):
        doc = random_doc(rng)
        assert dumps_indented(doc, indent) == reference(doc, indent)
    for doc in ({}, [], (), {"a": {}}, [[], {}], {"a": [1, {"b": None}]}, *SCALARS):
        assert dumps_indented(doc, indent) == reference(doc, indent)


class Colour(enum.StrEnum):
    RED = "red"


class Count(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize("doc", [{1: "int key"}, {None: 1}, Colour.RED, [Count.ONE],
                                 {"x": {1.5: 2}}, object(), [b"bytes"]])
def test_what_it_does_not_cover_goes_back_to_json_dumps(doc: object) -> None:
    with pytest.raises(Unsupported):
        dumps_indented(doc, 2)
    try:
        expected = json.dumps(doc, ensure_ascii=False, indent=2)
    except TypeError as exc:  # json.dumps refuses it: so does json_text, with json's error
        with pytest.raises(TypeError, match=str(exc)[:20]):
            json_text(doc, indent=2)
    else:
        assert json_text(doc, indent=2) == expected.replace("\u2028", "\\u2028")


def test_a_cycle_is_still_json_dumps_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(Unsupported):
        dumps_indented(loop, 2)
    with pytest.raises(ValueError, match="Circular reference"):
        json_text(loop, indent=2)


def test_json_text_with_indent_still_escapes_unsafe_characters() -> None:
    doc = {"name": "a\u2028b\u202ec\x85", "argv": ["\udcff"]}
    text = json_text(doc, indent=2)
    assert "\u2028" not in text and "\\u2028" in text and "\\u202e" in text
    assert json.loads(text) == doc
    assert text.count("\n") == reference(doc, 2).count("\n")  # only the encoder's breaks
