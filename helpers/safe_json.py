"""One JSON parser for every venue message and REST body, with limits on size and nesting.

Why not plain ``json.loads``: CPython's C decoder recurses once per ``[``/``{`` and trusts
``sys.getrecursionlimit()`` to stop it before the C stack runs out. lighter-sdk imports py_ecc,
which raises that limit to 100,000, and one 200 KB frame nested 100,000 deep then segfaulted the
bot. msgspec recurses the same way (it segfaults on the same frame); orjson stops at depth 1024
by itself but has no exact-decimal mode, and venue prices must be Decimal. So the input is
bounded *before* it reaches the decoder:

* size: ``len`` of the text or bytes, checked first (O(1));
* depth: an upper bound from counting opening brackets (two C-level ``count`` calls), and only
  when that bound exceeds the limit, a linear scan made of C-level bytes operations (see
  :func:`nesting_depth`). The scan follows the JSON tokenisation wherever the text is valid, and
  the decoder stops at the first invalid token, so the decoder never nests deeper than the scan
  found.

Then the standard decoder runs with ``parse_float`` giving :class:`~decimal.Decimal` (ints stay
``int``) and ``NaN``/``Infinity`` refused. Every violation raises
:class:`exchanges.base.MalformedMessage` with a short reason that never quotes the payload.
Measured numbers and the choice between decoders are in the README ("Hostile input").
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from exchanges.base import MalformedMessage

#: Largest message or body accepted, in characters (str) or bytes. A Lighter order book snapshot
#: is a few tens of KB; REST lists of orders stay far below this.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: Deepest nesting accepted. Venue messages nest 4-6 levels; 64 leaves room for any real schema
#: and is far below what the C stack survives at any recursion limit.
DEFAULT_MAX_DEPTH = 64
#: Longest number literal accepted with a fraction or exponent (ints are bounded by Python's own
#: 4,300-digit limit). A price with more digits than this is an attack or a bug, not a price.
MAX_NUMBER_CHARS = 100

#: The kind of :class:`MalformedJSON` for text that is not JSON at all (as opposed to JSON
#: refused for its size, depth or numbers).
NOT_JSON = "not JSON"

#: Largest decimal exponent accepted (1E+1000): beyond it Decimal arithmetic later overflows,
#: and no venue quantity is anywhere near.
MAX_EXPONENT = 1000

_ESCAPE_PAIR = re.compile(rb"\\.", re.DOTALL)
_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in _STRUCTURE)


class MalformedJSON(MalformedMessage):
    """A message or body refused by :func:`loads`; ``kind`` names the rule it broke.

    ``kind`` is one of ``too large``, ``too deep``, ``not JSON``, ``not UTF-8``,
    ``non-finite number``, ``number too long``, ``bad number``: a fixed vocabulary, so callers
    can count and rate-limit log lines per kind. The message never quotes the payload.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def _reject(kind: str, detail: str = "") -> NoReturn:
    raise MalformedJSON(kind, detail)


def _parse_float(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        _reject("number too long", f"over {MAX_NUMBER_CHARS} characters")
    try:
        value = Decimal(text)
    except InvalidOperation:  # an exponent past Decimal's own range
        _reject("bad number", "exponent out of range")
    if not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        _reject("bad number", "exponent out of range")
    return value


def _parse_constant(name: str) -> NoReturn:
    _reject("non-finite number", name)


_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_parse_constant)


def nesting_depth(text: str | bytes, limit: int | None = None) -> int:
    """An upper bound on the ``[``/``{`` nesting of ``text``, exact for valid JSON.

    Escape pairs are cut first (so an escaped quote cannot end a string), then every byte but
    quotes and brackets, then string contents (after adjacent quote pairs go, the even pieces
    between quotes are outside strings; an unterminated string hides the rest, where the decoder
    stops anyway). What is left is brackets: each round of removing innermost pairs lowers the
    depth by exactly one, and unmatched openers are added on top. Each round is one C-level
    pass, and with ``limit`` there are at most ``limit + 1`` of them, so the cost is linear in
    the input for a fixed limit.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if b"\\" in data:
        data = _ESCAPE_PAIR.sub(b"", data)
    data = data.translate(None, _NOT_STRUCTURE)
    if b'"' in data:
        # Dropping two adjacent quotes keeps the parity of the quotes before every other byte,
        # so what is inside a string stays inside; it leaves only strings holding brackets.
        data = data.replace(b'""', b"")
        if b'"' in data:
            data = b"".join(data.split(b'"')[::2])
    data = data.replace(b"{", b"[").replace(b"}", b"]")
    rounds = 0
    while b"[]" in data:
        if limit is not None and (rounds > limit or b"[" * (limit + 1) in data):
            return limit + 1
        data = data.replace(b"[]", b"")
        rounds += 1
    return rounds + data.count(b"[")


def loads(
    text: str | bytes | bytearray,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse one JSON document: fractions as Decimal, ints as int; :class:`MalformedJSON` otherwise.

    ``max_bytes`` counts characters for ``str`` and bytes for ``bytes``; ``max_depth`` counts
    nested arrays and objects (``{}`` is depth 1).
    """
    if len(text) > max_bytes:
        _reject("too large", f"{len(text)} bytes, over the {max_bytes}-byte limit")
    if isinstance(text, bytearray):
        text = bytes(text)
    if isinstance(text, str):
        opens = text.count("[") + text.count("{")
    else:
        opens = text.count(b"[") + text.count(b"{")
    if opens > max_depth and nesting_depth(text, max_depth) > max_depth:
        _reject("too deep", f"nested deeper than {max_depth} levels")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        _reject(NOT_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}")
    except UnicodeDecodeError:
        _reject("not UTF-8")
    except RecursionError:
        # Only when the interpreter's own limit is set below max_depth.
        _reject("too deep", "over the interpreter's recursion limit")
    except ValueError:
        # int() past Python's 4,300-digit limit raises a bare ValueError.
        _reject("bad number", "integer too long")


@contextlib.contextmanager
def recursion_limit_kept() -> Iterator[None]:
    """Put ``sys.getrecursionlimit()`` back to its value on entry when the block ends.

    For imports that raise it as a side effect (py_ecc, through lighter-sdk, sets 100,000):
    a limit that high lets any C-level recursion run off the C stack before Python notices.
    """
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)
