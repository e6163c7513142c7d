"""The compiled scanner (backtesting/binance_scan.c) against the Python reader it stands in for.

A recording read with the scanner must give exactly what the Python reader gives: the same
columns (times bit for bit), the same value table (texts and order), the same counts (line
numbers of malformed lines, clamps, symbols), the same truncation and the same errors. Each test
reads one file both ways and compares everything; the generated files mix Binance's exact lines
with every other kind of line, number spellings the scanner must hand over, bad timestamps,
three newline conventions, invalid UTF-8, tiny read blocks and cut-off or corrupt gzip.
"""

from __future__ import annotations

import gzip
import itertools
import random
from dataclasses import asdict
from pathlib import Path

import lz4.frame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtesting import binance_scan, market_feed
from backtesting.event_columns import ColumnBuilder
from backtesting.market_feed import FeedStats, read_recorded_columns, read_recorded_feed
from tests.shared_paths import RECORDED_FEED
from tests.test_feed_formats import HYPERLIQUID_LINES
from tests.test_feed_lean import book, hostile_lines, trade

pytestmark = pytest.mark.skipif(
    binance_scan.load() is None, reason="the compiled scanner cannot be built here (no C compiler)"
)
FUZZ = settings(deadline=None, max_examples=250, suppress_health_check=[HealthCheck.too_slow])
NS = 1_723_161_254_000_000_000


def read(path: Path, compiled: bool, allow_truncated: bool = True) -> tuple[object, ...]:
    """Everything a read gives: columns, value texts, counts, and the error it raised (an error
    that is not a ValueError is compared alone: nothing is cached from such a read)."""
    stats = FeedStats()
    builder = ColumnBuilder()
    error = None
    try:
        for _ in read_recorded_columns(path, stats, allow_truncated, builder, compiled=compiled):
            pass
    except ValueError as exc:
        error = (type(exc).__name__, str(exc))
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    texts = [str(value) for value in builder.values]
    assert builder.table_text == "\n".join(texts).encode()  # the table as the cache stores it
    return (
        [column.tobytes() for column in builder.columns],
        texts,
        asdict(stats),
        error,
    )


def assert_alike(path: Path) -> None:
    for allow_truncated in (True, False):
        assert read(path, True, allow_truncated) == read(path, False, allow_truncated)


def test_the_shared_recording_reads_alike() -> None:
    compiled = read(RECORDED_FEED, True)
    assert compiled == read(RECORDED_FEED, False)
    assert compiled[2]["events_yielded"] == 87_402 and len(compiled[1]) == 15_917


def test_the_hostile_lines_read_alike(tmp_path: Path) -> None:
    path = tmp_path / "hostile.gz"
    path.write_bytes(gzip.compress(("\n".join(hostile_lines()) + "\n").encode()))
    assert_alike(path)


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ("007.5", "7.5"),
        ("0.0000001", "1E-7"),
        ("0.00000000", "0E-8"),
        ("100.0", "+100.0"),
        ("3.", "3"),
        (".5", "0.5"),
    ],
)
def test_a_value_spelled_two_ways_is_one_entry(tmp_path: Path, first: str, again: str) -> None:
    """A plain text whose value's own text differs (leading zeros, tiny values) enters the table
    under both spellings, as the Python reader enters it, so the other spelling finds it."""
    path = tmp_path / "spelled.gz"
    lines = [
        book(NS, "1", "100.1", first, "2"),
        book(NS + 1, "1", "100.1", again, "2"),
        trade(NS + 2, "1", again),
    ]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert_alike(path)


#: Bytes next to the digits that the eight-at-a-time digit test must turn away (":" to "?" share
#: the digits' high nibble).
STRAY = ":;<=>?/ a\x00"


def digit_runs(lengths: range) -> list[str]:
    """Digit runs of each length, and each with a stray byte at every place."""
    runs = []
    for length in lengths:
        runs += _with_a_stray("".join(str((7 * place + 3) % 10) for place in range(length)), STRAY)
    return runs


def _with_a_stray(text: str, strays: str) -> list[str]:
    """The text, and the text with each of ``strays`` in place of each of its characters."""
    places = range(len(text))
    return [text] + [text[:place] + stray + text[place + 1 :] for place in places for stray in strays]


def test_digit_runs_with_a_stray_byte_anywhere_read_alike(tmp_path: Path) -> None:
    """Receive times around the usual 19 digits and the ids and times the scanner steps over,
    each with a stray byte at every place: the scanner reads them eight bytes at a time, and
    must stop where the Python reader's pattern stops."""
    lines = [book(stamp, "100.0", "100.1") for stamp in digit_runs(range(15, 23))]
    ids = digit_runs(range(0, 26, 3))
    lines += [book(NS + n, "100.0", "100.1").replace('"u":7', f'"u":{run}') for n, run in enumerate(ids)]
    for field in ('"E":1', '"T":1', '"t":5'):
        lines += [trade(NS + n, "100.0", "1").replace(field, field[:4] + run) for n, run in enumerate(ids)]
    path = tmp_path / "digits.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert_alike(path)
    read_here = read(path, True)
    assert read_here[2]["events_yielded"] > len(lines) // 20  # plain runs among them are events


def handed_over(path: Path) -> list[str]:
    """The lines a compiled read of ``path`` leaves to the Python reader."""
    lines: list[str] = []
    python_lines = binance_scan._python_lines

    def record(block: list[str], *args: object) -> None:
        lines.extend(line.rstrip("\n") for line in block)
        python_lines(block, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(binance_scan, "_python_lines", record)
        read(path, True)
    return lines


def test_number_texts_and_names_with_a_stray_byte_anywhere_read_alike(tmp_path: Path) -> None:
    """Number texts and the names between quotes are read eight bytes at a time too: texts of
    every length around the word size and the 40-character limit, with and without decimals, in
    every field, and symbols and trade kinds of every length, each with a stray byte at every
    place (bytes of 0xfa and up too, whose digit test carries into the next byte); and books,
    crossed or not, whose prices' whole parts have other lengths around 8 and 16. The scanner
    reads every line of plain texts itself."""
    digits = "31415926535897932384626433832795028841971"
    lines, plain = [], []
    for whole in (1, 2, 7, 8, 9, 15, 16, 17, 24, 39, 40, 41):
        for decimals in (0, 1, 6, 7, 8, 9, 16):
            number = digits[:whole] + (f".{digits[-decimals:]}" if decimals else "")
            for variant, text in enumerate(_with_a_stray(number, STRAY + '\xfa\xff."')):
                field = len(lines) % 6
                if field < 4:
                    prices = ["0.5", "99999999999999999999", "1.0", "2.0"]
                    prices[field] = text
                    lines.append(book(NS, *prices))
                else:
                    lines.append(trade(NS, text, "1") if field == 4 else trade(NS, "100.0", text))
                if variant == 0 and len(number) <= 40:
                    plain.append(lines[-1])
    for length in (0, 1, 7, 8, 9, 16, 17):
        for variant, name in enumerate(_with_a_stray(("BTCUSDTX" * 3)[:length], '{}"\xff')):
            lines.append(book(NS, "1.0", "2.0").replace('"s":"BTCUSDT"', f'"s":"{name}"'))
            lines.append(trade(NS, "1.0", "2.0", kind=name))
            if variant == 0:
                plain += lines[-2:]
    prices = ["99999999.5", "123456789.0", "9999999999999999.9", "10000000000000000.1", "0099.5", "100"]
    for bid, ask in itertools.permutations(prices, 2):
        lines.append(book(NS, bid, ask))
        plain.append(lines[-1])
    path = tmp_path / "texts.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("latin-1")))
    assert_alike(path)
    assert not set(plain) & set(handed_over(path))


def test_texts_near_the_end_of_a_line_and_alike_but_for_their_last_bytes_read_alike(tmp_path: Path) -> None:
    """A field's text is compared with the one last read in that field a word at a time when the
    line goes on for 16 bytes after it, and byte by byte nearer its end (a line may end right
    after its last number): texts of 3-17 characters alike but for a late byte, one after
    another in the same field, both ways."""
    sizes = ["0.123456789", "0.123456788", "0.12345678", "0.1234567890123456", "0.1234567890123457", "0.12"]
    sizes += ["12345678", "12345679", "1234567.9", "1234567.8", "100", "101", "1.23456789012345678"]
    lines = []
    for n, size in enumerate(sizes * 3):
        line = book(NS + n, "100.0", "100.1", size, size)
        lines.append(line)
        lines.append(line[: line.index('"T":') - 1])  # the line ends after the ask size's quote
        lines.append(trade(NS + n, "100.0", size))
    path = tmp_path / "late.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert_alike(path)
    assert set(read(path, True)[1]) >= set(sizes)
    assert not handed_over(path)  # the scanner reads them all, the cut lines too


def test_times_are_pythons_division_bit_for_bit() -> None:
    """The scanner's times against ``int / 10**9`` on every receive time of the shared feed and on
    random ones over the whole 19-digit range, around 2**53 (where the scanner's method changes)
    and on the last nanoseconds of a second."""
    with gzip.open(RECORDED_FEED, "rt") as handle:
        stamps = [int(line[: line.index(" ")]) for line in handle]
    generator = random.Random(7)
    stamps += [generator.randrange(10**19) for _ in range(100_000)]
    stamps += [2**53 + offset for offset in range(-2000, 2000)]
    stamps += [generator.randrange(1, 10**10) * 10**9 - generator.randrange(3) for _ in range(10_000)]
    stamps += [generator.randrange(2**63) for _ in range(100_000)]
    for stamp in stamps:
        assert binance_scan.seconds(stamp) == stamp / 10**9, stamp


@given(st.integers(min_value=0, max_value=10**19 - 1))
@settings(max_examples=2000, deadline=None)
def test_fuzz_times_are_pythons_division(stamp: int) -> None:
    assert binance_scan.seconds(stamp) == stamp / 10**9


# Number texts: plain ones the scanner reads (some with leading zeros or many zeros, whose
# canonical text differs), and every spelling it must hand to the Python reader.
PLAIN = st.one_of(
    st.sampled_from(["100.0", "100.00", "100.1", "99.95", "0", "0.0", "0.000", "1", "2.0", "0.001"]),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(
        ["007.5", "7.5", "0.0000001", "0.00000000", "9" * 40, "0." + "0" * 37 + "1", "1" * 39 + ".5"]
    ),
)
ODD = st.one_of(
    st.sampled_from(
        ["", "1.", ".5", "1.2.3", "+1", "-1", "-0", " 1", "1 ", "1_0", "1e5", "1E+2", "1E-7", "0E-8", "NaN"]
    ),
    st.sampled_from(["\u0661\u0660", "1\\u0030", "1" * 41, "x", "1{", "1}", "\u00e9"]),
    st.text(alphabet="0123456789.-+eE _x", max_size=6),
)
NUMBER = st.one_of(PLAIN, PLAIN, PLAIN, ODD)
STAMP = st.one_of(
    st.integers(NS - 10**9, NS + 10**9).map(str),
    st.integers(NS - 10**9, NS + 10**9).map(str),
    st.integers(0, 10**19 - 1).map(str),
    st.sampled_from(
        ["0", "1", "0001", "9" * 19, "1" * 20, "9" * 400, "", "-1", "12a", "\u0661\u0662", "1 2"]
    ),
    # Around the usual 19 digits, with a stray byte anywhere in them (read eight at a time).
    st.from_regex(r"[0-9]{15,21}", fullmatch=True),
    st.from_regex(r"[0-9]{0,18}[a:/ ][0-9]{0,6}", fullmatch=True),
)
#: The digits of the fields the scanner steps over (update, trade and event ids, times).
DIGITS = st.one_of(
    st.sampled_from(["7", "1", "5123107837557", "1723161256298"]),
    st.from_regex(r"[0-9]{0,26}", fullmatch=True),
    st.from_regex(r"[0-9]{0,17}[a:/.\-][0-9]{0,9}", fullmatch=True),
)
NAME = st.sampled_from(["btcusdt", "ethusdt", "", "b\u00e9t", "btc@usdt", "a{b", "BTC"])


@st.composite
def lines(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 11))
    stamp, name = draw(STAMP), draw(NAME)
    if kind <= 3:
        text = book(stamp, draw(NUMBER), draw(NUMBER), draw(NUMBER), draw(NUMBER))
        return text.replace("btcusdt@", f"{name}@", 1).replace('"u":7', f'"u":{draw(DIGITS)}', 1)
    if kind <= 5:
        maker = draw(st.sampled_from(["true", "false", "tru", "1"]))
        text = trade(
            stamp, draw(NUMBER), draw(NUMBER), kind=draw(st.sampled_from(["MARKET", "LI{MIT", 'a"b', ""]))
        )
        for field in ('"E":1', '"T":1', '"t":5'):
            text = text.replace(field, f"{field[:4]}{draw(DIGITS)}", 1)
        return text.replace('"m":false', f'"m":{maker}').replace("btcusdt@", f"{name}@", 1)
    if kind == 6:
        channel = draw(st.sampled_from(["depth@0ms", "depth", "dept", "markPrice", "bookTickers", "trade@x"]))
        return f'{stamp} {{"stream":"{name}@{channel}","data":{{"b":[["1","2"]],"a":[]}}}}'
    if kind == 7:
        return f'{stamp} {{"stream":"{name}","data":{{}}}}'
    if kind == 8:
        return f'{stamp} {{"lastUpdateId":1,"bids":[],"asks":[]}}'
    if kind == 9:
        bid, ask = draw(NUMBER), draw(NUMBER)
        data = f'{{"s":"X","b":"{bid}","B":"1","a":"{ask}","A":"1"}}'
        return f'{stamp} {{"stream":"{name}@bookTicker","data":{data}}}'
    if kind == 10:
        whole = book(stamp, draw(PLAIN), draw(PLAIN))
        return whole[: draw(st.integers(0, len(whole)))]
    return draw(st.text(max_size=30))


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """A recording's bytes: a Binance line first (so the format is found), then generated lines
    with mixed newlines, sometimes invalid UTF-8, sometimes no final newline."""
    chosen = [book(NS, "100.0", "100.1"), *draw(st.lists(lines(), max_size=40))]
    parts = []
    for text in chosen:
        data = text.encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 15)) == 0:
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe2\x82", b"\xc3", b"\x00"])) + data[at:]
        parts.append(data + draw(st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r"])))
    if draw(st.booleans()):
        parts[-1] = parts[-1].rstrip(b"\r\n")
    return b"".join(parts)


@given(
    files(),
    st.integers(1, 400),
    st.integers(1, 50),
    st.sampled_from(["text", "gzip", "cut", "corrupt"]),
    st.randoms(),
)
@FUZZ
def test_fuzz_generated_recordings_read_alike(
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes,
    block: int,
    scanned_lines: int,
    form: str,
    generator: random.Random,
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "feed"
    if form == "text":
        path.write_bytes(data)
    else:
        packed = gzip.compress(data * generator.randint(1, 3))
        if form == "cut":
            packed = packed[: generator.randrange(10, len(packed))]
        elif form == "corrupt":
            at = generator.randrange(10, len(packed))
            packed = packed[:at] + bytes([packed[at] ^ 0x55]) + packed[at + 1 :]
        path.write_bytes(packed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(market_feed, "_BLOCK_BYTES", block)  # lines, and \r\n, cut by the blocks
        patch.setattr(binance_scan, "_MAX_LINES", scanned_lines)  # blocks cut into scans
        assert_alike(path)


@pytest.mark.parametrize("packing", ["text", "gzip", "lz4"])
@pytest.mark.parametrize("recording", ["binance", "hyperliquid", "unknown"])
def test_every_format_and_packing_reads_alike(tmp_path: Path, packing: str, recording: str) -> None:
    """Hyperliquid and unknown files take the scanner's byte reader too (as text lines), and an
    lz4 file stays text throughout."""
    lines = {
        "binance": hostile_lines(),
        "hyperliquid": [*HYPERLIQUID_LINES, "{oops", "  "],
        "unknown": ["hello world", "1 2 3"],
    }[recording]
    data = "\r\n".join(lines).encode() + b"\n"
    pack = {"text": bytes, "gzip": gzip.compress, "lz4": lz4.frame.compress}[packing]
    path = tmp_path / "feed"
    path.write_bytes(pack(data))
    assert_alike(path)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97])
def test_a_cut_off_recording_reads_alike(tmp_path: Path, cut: float) -> None:
    packed = RECORDED_FEED.read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: int(len(packed) * cut)])
    assert_alike(path)


def test_a_new_value_table_on_an_endless_replay_changes_no_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MarketEvent reader starts a new value table every few values (and the scanner its text
    table every few texts): the events are still the Python reader's."""
    path = tmp_path / "hostile.gz"
    path.write_bytes(gzip.compress(("\n".join(hostile_lines() * 30) + "\n").encode()))
    monkeypatch.setattr(market_feed, "_DECIMAL_CACHE_LIMIT", 7)
    monkeypatch.setattr(market_feed, "_BLOCK_BYTES", 700)
    monkeypatch.setattr(binance_scan, "_TEXT_LIMIT", 5)
    compiled_stats, python_stats = FeedStats(), FeedStats()
    compiled = list(read_recorded_feed(path, compiled_stats))
    monkeypatch.setenv(binance_scan.SCANNER_VARIABLE, "python")
    assert binance_scan.load() is None
    assert compiled == list(read_recorded_feed(path, python_stats))
    assert asdict(compiled_stats) == asdict(python_stats)


def test_a_scanner_table_started_again_enters_no_value_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scanner starts its text table again every few texts while the builder keeps its
    value table whole (a first read): texts it hands over again are found in the table, so the
    columns and the table are the Python reader's."""
    lines = [book(NS + n, f"{100 + n % 9}.5", f"{101 + n % 9}.5", f"{n % 4}.25", "2") for n in range(60)]
    path = tmp_path / "repeats.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr(market_feed, "_BLOCK_BYTES", 700)
    monkeypatch.setattr(binance_scan, "_TEXT_LIMIT", 5)
    compiled = read(path, True)
    assert compiled == read(path, False)
    assert len(compiled[1]) == len(set(compiled[1])) == 10 + 4 + 1  # each value once


def test_without_a_compiler_the_python_reader_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(binance_scan.ScannerUnavailable):
        binance_scan.build(tmp_path)
    monkeypatch.setattr(binance_scan, "_tried", False)
    monkeypatch.setattr(binance_scan, "_library", None)
    monkeypatch.setattr(binance_scan, "_cache_folder", lambda: tmp_path)
    assert binance_scan.load() is None
    path = tmp_path / "feed.gz"
    path.write_bytes(gzip.compress(("\n".join(hostile_lines()) + "\n").encode()))
    assert read(path, True) == read(path, False)
