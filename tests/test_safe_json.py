"""helpers.safe_json: bounded parsing of venue messages, plus property-based fuzzing."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchanges.base import MalformedMessage
from helpers import safe_json
from helpers.safe_json import MalformedJSON, loads, nesting_depth

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])


def test_fractions_are_decimal_and_ints_are_int() -> None:
    message = loads('{"price":"2064.54","size":0.3285,"offset":1558300,"big":1e-7,"ok":true,"n":null}')
    assert message["size"] == Decimal("0.3285") and isinstance(message["size"], Decimal)
    assert message["offset"] == 1558300 and type(message["offset"]) is int
    assert message["big"] == Decimal("1E-7")
    assert message["price"] == "2064.54"
    assert loads(b"[1.50]") == [Decimal("1.50")]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[" * 65 + "]" * 65, "too deep"),
        ('{"a":' * 65 + "1" + "}" * 65, "too deep"),
        ("[" * 100_000, "too deep"),
        ("x" * 11, "too large"),
        ('{"p": NaN}', "non-finite number"),
        ("[-Infinity]", "non-finite number"),
        ("[1." + "1" * 200 + "]", "number too long"),
        ("[" + "9" * 5000 + "]", "bad number"),
        ("[1e9999999999999999999]", "bad number"),
        ("[1.5e1001]", "bad number"),
        ("{'a': 1}", "not JSON"),
        ("", "not JSON"),
        (b"\xff\xfe[]", "not UTF-8"),
    ],
)
def test_violations_raise_the_typed_error_with_a_kind(text: str | bytes, kind: str) -> None:
    max_bytes = 10 if kind == "too large" else safe_json.DEFAULT_MAX_BYTES
    with pytest.raises(MalformedJSON) as caught:
        loads(text, max_bytes=max_bytes)
    assert caught.value.kind == kind
    assert isinstance(caught.value, MalformedMessage)


def test_the_reason_never_quotes_the_payload() -> None:
    secret = "0x" + "ab" * 40
    for text in (f'{{"key": "{secret}", ', f"[{secret}]", f'[1.{"7" * 300}, "{secret}"]'):
        with pytest.raises(MalformedJSON) as caught:
            loads(text)
        assert secret not in str(caught.value) and "777" not in str(caught.value)


def test_depth_limit_is_exact_and_strings_do_not_count() -> None:
    assert loads("[" * 64 + "]" * 64) is not None
    tricky = '["' + "[" * 500 + '\\"]]]]' + '"]'
    assert loads(tricky) == ["[" * 500 + '"]]]]']
    assert nesting_depth('[["]]]]]]", "x"]]') == 2
    # A closing bracket hidden in a string must not lower the count of the real ones after it.
    hidden = '["' + "]" * 100 + '"' + ",[" * 70 + "]" * 71
    with pytest.raises(MalformedJSON, match="too deep"):
        loads(hidden)
    # An escaped quote must not end the string, or the nesting after it would be hidden.
    escaped = '["a\\"b", ' + "[" * 70 + "]" * 70 + "]"
    assert json.loads(escaped)[0] == 'a"b'
    with pytest.raises(MalformedJSON, match="too deep"):
        loads(escaped)


def test_deep_frame_with_the_sdk_recursion_limit_is_refused_not_a_segfault() -> None:
    """The crash of issue #8, in its own process: limit 100,000 as py_ecc sets it, one 200 KB frame."""
    code = (
        "import sys\n"
        "sys.setrecursionlimit(100_000)\n"
        "from helpers.safe_json import loads, MalformedJSON\n"
        "for frame in ('[' * 100_000 + ']' * 100_000, '{\"a\":' * 50_000 + '1' + '}' * 50_000):\n"
        "    try:\n"
        "        loads(frame)\n"
        "    except MalformedJSON as exc:\n"
        "        print(exc.kind)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["too", "deep", "too", "deep"]


def test_importing_the_lighter_client_keeps_the_recursion_limit() -> None:
    code = (
        "import sys\n"
        "before = sys.getrecursionlimit()\n"
        "import exchanges.lighter\n"
        "assert 'py_ecc' in sys.modules, 'py_ecc no longer imported: test is moot'\n"
        "print(before, sys.getrecursionlimit())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    before, after = done.stdout.split()
    assert before == after


def test_recursion_limit_kept_restores_after_an_error() -> None:
    before = sys.getrecursionlimit()
    with pytest.raises(RuntimeError), safe_json.recursion_limit_kept():
        sys.setrecursionlimit(before + 500)
        raise RuntimeError
    assert sys.getrecursionlimit() == before


# ---------------------------------------------------------------------------------------------
# Property-based fuzzing
# ---------------------------------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: len(str(d)) <= safe_json.MAX_NUMBER_CHARS and abs(d.adjusted()) <= safe_json.MAX_EXPONENT
    ),
)
_leaves = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=20))
_documents = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


def _dump(value: Any) -> str:
    """json.dumps that writes Decimal as a JSON number literal."""
    if isinstance(value, Decimal):
        text = str(value)
        return text if any(c in text for c in ".Ee") else text + ".0"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _numbers_in(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [n for item in value for n in _numbers_in(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers_in(item)]
    return [value] if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) else []


def _true_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_true_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_true_depth(item) for item in value.values()), default=0)
    return 0


@FUZZ
@given(_documents)
def test_fuzz_valid_documents_round_trip_exactly(document: Any) -> None:
    text = _dump(document)
    assert loads(text) == document
    assert nesting_depth(text) == _true_depth(document)
    for number in _numbers_in(loads(text)):
        assert type(number) is int or (isinstance(number, Decimal) and number.is_finite())


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzz_arbitrary_input_parses_or_raises_the_typed_error(text: str | bytes) -> None:
    try:
        parsed = loads(text, max_depth=8)
    except MalformedJSON:
        return
    for number in _numbers_in(parsed):
        assert type(number) is int or (isinstance(number, Decimal) and number.is_finite())


_noise = st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", ":", "NaN", "1e999999", "-", "\\u", ' "a":'])


@FUZZ
@given(_documents, st.lists(st.tuples(st.integers(min_value=0), _noise), max_size=6), st.integers(0, 400))
def test_fuzz_mutated_and_deepened_documents_never_escape_the_typed_error(
    document: Any, mutations: list[tuple[int, str]], extra_depth: int
) -> None:
    text = "[" * extra_depth + _dump(document) + "]" * extra_depth
    for position, piece in mutations:
        cut = position % (len(text) + 1)
        text = text[:cut] + piece + text[cut:]
    try:
        parsed = loads(text)
    except MalformedJSON:
        return
    # Accepted: then it is what the standard decoder makes of it, within the depth limit.
    assert parsed == json.loads(text, parse_float=Decimal)
    assert _true_depth(parsed) <= safe_json.DEFAULT_MAX_DEPTH
    for number in _numbers_in(parsed):
        assert type(number) is int or (isinstance(number, Decimal) and number.is_finite())


def test_lighter_rest_body_too_deep_is_a_typed_error_naming_the_endpoint() -> None:
    from exchanges.lighter import LighterRest

    with pytest.raises(MalformedMessage, match="/api/v1/account"):
        LighterRest._parse("GET", "/api/v1/account", 200, "[" * 100_000 + "]" * 100_000, None)
    assert LighterRest._parse("GET", "/api/v1/account", 200, '{"code":200,"x":1.50}', None)["x"] == Decimal(
        "1.50"
    )
