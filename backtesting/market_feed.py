"""Market events for the paper venue and backtests: a recorded-feed reader and a synthetic market.

Both sources yield the same small :class:`MarketEvent` objects, so the paper venue, a backtest
engine and the tests consume real and simulated data through one path. The reader is the cold
backtest's hot path, so it reads a recording into columns (:mod:`backtesting.event_columns`):
one regular expression matches a whole line as Binance writes it, and a number text it has
seen before is an index into the value table, without a Decimal or an event object; lines laid
out differently take cheap string checks and :func:`helpers.safe_json.loads`. The MarketEvent
reader is a view over those columns. It never crashes on a bad line: it counts it by kind and
moves on. Where a C compiler is at hand, a compiled scanner (:mod:`backtesting.binance_scan`)
reads Binance's lines from the decompressed bytes instead and hands every line it does not read
to this reader, with the same result.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import io
import itertools
import logging
import math
import queue
import random
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from backtesting.event_columns import BBO, BOUGHT, SOLD, ColumnBuilder, Columns
from exchanges.base import MalformedMessage, OrderSide
from helpers import safe_json

logger = logging.getLogger(__name__)


class MarketEventKind(enum.Enum):
    BBO = "bbo"
    TRADE = "trade"


@dataclass(frozen=True, slots=True)
class MarketEvent:
    """One top-of-book change (BBO) or one public trade print (TRADE).

    ``timestamp`` is epoch seconds. BBO events carry ``best_bid``/``best_ask``/``bid_size``/
    ``ask_size``; TRADE events carry ``price``/``size``/``aggressor_side`` (the side that took
    liquidity). Fields that do not apply to the kind are None. Use :meth:`bbo` and :meth:`trade`
    on hot paths: they build the same frozen object at about half the cost of the generated
    ``__init__``.
    """

    timestamp: float
    kind: MarketEventKind
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    price: Decimal | None = None
    size: Decimal | None = None
    aggressor_side: OrderSide | None = None

    @classmethod
    def bbo(
        cls, timestamp: float, best_bid: Decimal, best_ask: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> MarketEvent:
        """A BBO event, built without the frozen ``__init__``'s per-field overhead."""
        event = _new_event(cls)
        _set_timestamp(event, timestamp)
        _set_kind(event, _BBO)
        _set_best_bid(event, best_bid)
        _set_best_ask(event, best_ask)
        _set_bid_size(event, bid_size)
        _set_ask_size(event, ask_size)
        _set_price(event, None)
        _set_size(event, None)
        _set_aggressor_side(event, None)
        return event

    @classmethod
    def trade(cls, timestamp: float, price: Decimal, size: Decimal, aggressor_side: OrderSide) -> MarketEvent:
        """A TRADE event, built without the frozen ``__init__``'s per-field overhead."""
        event = _new_event(cls)
        _set_timestamp(event, timestamp)
        _set_kind(event, _TRADE)
        _set_best_bid(event, None)
        _set_best_ask(event, None)
        _set_bid_size(event, None)
        _set_ask_size(event, None)
        _set_price(event, price)
        _set_size(event, size)
        _set_aggressor_side(event, aggressor_side)
        return event


# Slot setters of the frozen class: writing through them skips the frozen __setattr__ guard,
# which is what makes the generated __init__ slow. Only the two factories above use them.
_new_event = object.__new__
_set_timestamp = MarketEvent.__dict__["timestamp"].__set__
_set_kind = MarketEvent.__dict__["kind"].__set__
_set_best_bid = MarketEvent.__dict__["best_bid"].__set__
_set_best_ask = MarketEvent.__dict__["best_ask"].__set__
_set_bid_size = MarketEvent.__dict__["bid_size"].__set__
_set_ask_size = MarketEvent.__dict__["ask_size"].__set__
_set_price = MarketEvent.__dict__["price"].__set__
_set_size = MarketEvent.__dict__["size"].__set__
_set_aggressor_side = MarketEvent.__dict__["aggressor_side"].__set__
_BBO = MarketEventKind.BBO
_TRADE = MarketEventKind.TRADE


# ---------------------------------------------------------------------------------------------
# Recorded feed
# ---------------------------------------------------------------------------------------------

MALFORMED_LINES_KEPT = 5

#: Why a line was skipped (keys of :attr:`FeedStats.malformed_by_kind`).
BAD_TIMESTAMP = "bad_timestamp"  # not 1-19 ASCII digits of nanoseconds
NOT_JSON = "not_json"  # garbage, cut-off or oversized JSON, or not an object
TOO_DEEP = "too_deep"  # JSON nested deeper than safe_json allows
BAD_NUMBER = "bad_number"  # unparseable, NaN/infinite, too long or an absurd exponent
BAD_PRICE = "bad_price"  # price <= 0, or a crossed book (bid > ask)
BAD_SIZE = "bad_size"  # negative size, or a trade of size 0
BAD_FIELDS = "bad_fields"  # a known stream with fields missing or of the wrong type
MALFORMED_KINDS = (BAD_TIMESTAMP, NOT_JSON, TOO_DEEP, BAD_NUMBER, BAD_PRICE, BAD_SIZE, BAD_FIELDS)


@dataclass
class FeedStats:
    """What reading a recorded feed came to, written when the iterator finishes or is closed.

    ``depth_lines``, ``snapshot_lines`` and ``other_lines`` (blank lines, unknown streams) are
    well-formed but unused; ``malformed_lines`` could not be used, counted by reason in
    ``malformed_by_kind`` (see ``MALFORMED_KINDS``), the first few listed by number;
    ``truncated`` says the compressed file ended early or was corrupt.

    Time never runs backwards in the output: an event whose receive time is earlier than the
    previous event's gets the previous event's time (the order of the lines is kept) and is
    counted in ``clamped_timestamps``. Only events move the clock, so a skipped line with a wild
    timestamp cannot hold every later event at its time.
    """

    lines_read: int = 0
    events_yielded: int = 0
    bbo_events: int = 0
    trade_events: int = 0
    depth_lines: int = 0
    snapshot_lines: int = 0
    other_lines: int = 0
    malformed_lines: int = 0
    malformed_line_numbers: list[int] = field(default_factory=list)
    malformed_by_kind: dict[str, int] = field(default_factory=dict)
    clamped_timestamps: int = 0
    truncated: bool = False
    #: Instruments named by the stream names of the first lines (``btcusdt@trade`` -> BTCUSDT).
    symbols: list[str] = field(default_factory=list)
    #: The recording format found (``BINANCE_FORMAT`` or ``HYPERLIQUID_FORMAT``).
    format: str = ""

    @property
    def skipped_lines(self) -> int:
        """Well-formed lines the reader does not turn into events (depth, snapshot, other)."""
        return self.depth_lines + self.snapshot_lines + self.other_lines

    def report(self) -> dict[str, Any]:
        """The counts a backtest report shows (result.json ``data.feed_stats``)."""
        return {
            "lines_read": self.lines_read,
            "events": self.events_yielded,
            "skipped_lines": self.skipped_lines,
            "malformed_lines": self.malformed_lines,
            "malformed_by_kind": dict(sorted(self.malformed_by_kind.items())),
            "clamped_timestamps": self.clamped_timestamps,
            "truncated": self.truncated,
            "format": self.format,
            "symbols": list(self.symbols),
        }

    def summary(self) -> str:
        """One line for logs and consoles: what was skipped and why, what was clamped."""
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.malformed_by_kind.items()))
        text = f"{self.malformed_lines} malformed line(s) skipped"
        if kinds:
            text += f" ({kinds})"
        if self.malformed_line_numbers:
            text += f", first at line(s) {', '.join(str(n) for n in self.malformed_line_numbers)}"
        return f"{text}; {self.clamped_timestamps} timestamp(s) clamped (time ran backwards)"

    def _record_malformed(self, line_number: int, kind: str) -> None:
        self.malformed_lines += 1
        self.malformed_by_kind[kind] = self.malformed_by_kind.get(kind, 0) + 1
        if len(self.malformed_line_numbers) < MALFORMED_LINES_KEPT:
            self.malformed_line_numbers.append(line_number)


# Binance's field order is fixed in practice; a line laid out differently falls back to JSON.
# Number texts longer than _MAX_NUMBER_TEXT also miss the fast path and are refused there.
_BOOK_TICKER_FIELDS = re.compile(
    r'"b":"([^"]{1,40})","B":"([^"]{1,40})","a":"([^"]{1,40})","A":"([^"]{1,40})"'
)
_TRADE_FIELDS = re.compile(r'"p":"([^"]{1,40})","q":"([^"]{1,40})".*?"m":(true|false)')
_STREAM_PREFIX = '{"stream":"'
#: Whole lines of the two streams exactly as Binance sends them (field order, and the fields
#: before the ones used), both in one anchored match: the timestamp, the symbol, then the book's
#: bid, bid size, ask and ask size, or the trade's price, size and maker flag. Every other line
#: (another layout, a nested object, a depth diff) takes the general path, which reads any line
#: this matches the same way: nanosecond digits up to the first space, one "@" in the stream
#: name, and the fields' first occurrence after it (the fields before them hold no quote, so
#: none can start earlier; the text between the size and ``"m"`` holds no newline, which the
#: general path's ``.*?`` would not cross). A line takes one path or the other, with one result.
_BINANCE_LINE = re.compile(
    r'([0-9]{1,19}) \{"stream":"([^"@]*)@(?:'
    r'bookTicker","data":\{"e":"bookTicker","u":[0-9]+,"s":"[^"{}]*",'
    r'"b":"([^"]{1,40})","B":"([^"]{1,40})","a":"([^"]{1,40})","A":"([^"]{1,40})"'
    r'|trade","data":\{"e":"trade","E":[0-9]+,"T":[0-9]+,"s":"[^"{}]*","t":[0-9]+,'
    r'"p":"([^"]{1,40})","q":"([^"]{1,40})","X":"[^"{}\n]*","m":(true|false))'
)
_ZERO = Decimal(0)
#: Distinct number texts the MarketEvent reader remembers before it starts a new table (a few MB
#: at most): 5.7 minutes of BTCUSDT hold ~16,000.
_DECIMAL_CACHE_LIMIT = 32768
_ONE_BILLION = 1_000_000_000
#: Nanoseconds since the epoch fit in 19 digits (int64); more is corruption, and a 400-digit
#: "timestamp" once overflowed the float division and aborted the replay.
_MAX_TIMESTAMP_DIGITS = 19
_MAX_NUMBER_TEXT = 40
#: Lines whose stream name is read for the instrument's symbol (a recording holds one market).
_SYMBOL_LINES = 1000
#: Decimal exponents a price or size may have (1E-40 .. 9.99E+40): beyond is corruption.
_MAX_EXPONENT = 40


class _MalformedLine(Exception):
    """Internal: the line could not be turned into an event, for ``kind`` (a MALFORMED_KINDS)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _checked_decimal(text: str) -> Decimal:
    """A price or size text as a finite Decimal of sane length and exponent, or _MalformedLine."""
    if len(text) > _MAX_NUMBER_TEXT:
        raise _MalformedLine(BAD_NUMBER)
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise _MalformedLine(BAD_NUMBER) from None
    if not value.is_finite() or (value and not -_MAX_EXPONENT <= value.adjusted() <= _MAX_EXPONENT):
        raise _MalformedLine(BAD_NUMBER)
    return value


def _field_decimal(value: Any) -> Decimal:
    """A number field of a JSON-parsed line: text, int or Decimal (never a bool, list, ...)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _MalformedLine(BAD_FIELDS)
    return _checked_decimal(str(value))


def _check_book(best_bid: Decimal, best_ask: Decimal, bid_size: Decimal, ask_size: Decimal) -> None:
    if not _ZERO < best_bid <= best_ask:
        raise _MalformedLine(BAD_PRICE)
    if bid_size < _ZERO or ask_size < _ZERO:
        raise _MalformedLine(BAD_SIZE)


def _check_trade(price: Decimal, size: Decimal) -> None:
    if not price > _ZERO:
        raise _MalformedLine(BAD_PRICE)
    if not size > _ZERO:
        raise _MalformedLine(BAD_SIZE)


def _parse_timestamp(text: str) -> float:
    """Epoch seconds from the line's nanosecond prefix, or _MalformedLine(BAD_TIMESTAMP)."""
    if len(text) > _MAX_TIMESTAMP_DIGITS or not text.isdigit():
        raise _MalformedLine(BAD_TIMESTAMP)
    try:
        return int(text) / _ONE_BILLION
    except ValueError:  # digits int() does not take (superscripts and the like)
        raise _MalformedLine(BAD_TIMESTAMP) from None


#: The recording formats the reader knows (``FeedStats.format`` names the one it found).
BINANCE_FORMAT = "binance"
HYPERLIQUID_FORMAT = "hyperliquid"
SUPPORTED_FORMATS = (
    "binance: '<receive-time-ns> <combined-stream JSON>' lines (bookTicker, trade; shared/data)",
    "hyperliquid: JSON lines of l2Book/trades messages, bare or as in the hyperliquid-archive "
    'S3 recordings ({"time", "raw": {"channel", "data"}})',
)
#: Lines looked at to recognise the format (blank lines are passed over).
_SNIFF_LINES = 20
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


class UnknownFeedFormat(ValueError):
    """The file is not market data in a format the reader knows (one line, names the file)."""


class TruncatedFeed(ValueError):
    """A compressed recording ends early or is corrupt, and the caller did not accept that."""


#: Text read at a time (``readlines`` hint): the reader takes lines a block at a time, in C,
#: rather than one Python generator step a line.
_BLOCK_CHARS = 1 << 20
_CAREFUL_BLOCK_LINES = 4096
_READ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, RuntimeError)


def _fast_decoder_errors() -> tuple[type[BaseException], ...]:
    """What ISA-L's gzip decoder raises on a cut-off or damaged file (its own IsalError on some
    damaged deflate data, besides zlib's kinds): the standard decoder then reads on from there
    and names the damage as zlib does."""
    from isal import isal_zlib

    return (EOFError, gzip.BadGzipFile, zlib.error, isal_zlib.IsalError)


def _gzip_blocks(path: Path) -> Iterator[list[str]]:
    """The lines of a gzip file in blocks: ISA-L's decoder reads them about twice as fast as the
    standard library's, but on a cut-off file (a recording killed mid-write) it stops at its last
    whole block; the standard decoder then yields every line that was flushed before the cut,
    and raises the same EOFError at the end."""
    from isal import igzip  # only a recording's first read decodes gzip (a backtest's import stays lean)

    delivered = 0
    try:
        with igzip.open(path, "rt", encoding="utf-8", errors="replace") as fast:
            while block := fast.readlines(_BLOCK_CHARS):
                delivered += len(block)
                yield block
        return
    except _fast_decoder_errors():
        pass
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as careful:
        yield from _blocks_until_error(itertools.islice(careful, delivered, None))


def _gzip_byte_blocks(path: Path) -> Iterator[bytes | list[str]]:
    """:func:`_gzip_blocks` for the compiled scanner: the same lines, as blocks of decompressed
    bytes (:func:`_line_blocks`) rather than decoded text. On a cut-off or corrupt file the
    standard decoder takes over as there, from the end of the last line delivered (blocks hold
    whole lines, so its text reader starts on a line as the reader that read it all would), and
    its blocks are lists of text lines."""
    from isal import igzip  # only a recording's first read decodes gzip (a backtest's import stays lean)

    delivered = [0]
    try:
        with igzip.open(path, "rb") as fast:
            yield from _line_blocks(fast, delivered)
        return
    except _fast_decoder_errors():
        pass
    with gzip.open(path, "rb") as careful:
        careful.seek(delivered[0])  # reads up to there, and fails where a text reader would
        text = io.TextIOWrapper(careful, encoding="utf-8", errors="replace")
        yield from _blocks_until_error(text)


#: Decompressed bytes read at a time by the compiled scanner's reader: a few blocks are held at
#: once (read ahead, joined, scanned); 1 MB blocks were 1-3 ms faster on the shared feed but
#: held 8 MB more at the peak.
_BLOCK_BYTES = 1 << 18


def _line_blocks(handle: Any, delivered: list[int] | None = None) -> Iterator[bytes]:
    """A binary file's whole lines, a block of bytes at a time, with the text reader's newlines:
    ``\r\n`` and a lone ``\r`` become ``\n`` (a ``\r`` that ends a read is held back until
    the next byte shows which it is). Every block but the last ends with ``\n``; the file's last
    line, unterminated, comes only once the file has ended cleanly. ``delivered[0]``: the file's
    bytes up to the end of the last line yielded (what is held back has no newline but that
    ``\r``, so it is as long in the file as here). Reads in the middle of a long line are kept
    apart and joined once, when its end comes."""
    with handle:
        carry = b""
        pending: list[bytes] = []
        read = 0
        while chunk := handle.read(_BLOCK_BYTES):
            read += len(chunk)
            if b"\n" not in chunk and b"\r" not in chunk:
                pending.append(chunk)
                continue
            data = b"".join((carry, *pending, chunk)) if carry or pending else chunk
            pending = []
            held = b""
            if b"\r" in data:
                if data.endswith(b"\r"):
                    data, held = data[:-1], b"\r"
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            end = data.rfind(b"\n") + 1
            carry = data[end:] + held
            if end:
                if delivered is not None:
                    delivered[0] = read - len(carry)
                yield data[:end]
        if carry or pending:
            yield b"".join((carry, *pending)).replace(b"\r", b"\n")


_DONE = object()


@contextlib.contextmanager
def _read_ahead(blocks: Iterator[Any], ahead: bool) -> Iterator[Iterator[Any]]:
    """``blocks``, produced by a thread up to two blocks ahead when ``ahead``: decompressing the
    next block then overlaps the compiled scanner's work on this one (it runs without the GIL).
    A read error reaches the consumer in its place; leaving the context stops the thread (and
    waits for it) before ``blocks`` is closed."""
    if not ahead:
        yield blocks
        return
    handed: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand(item: Any, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                handed.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in blocks:
                if not hand(block):
                    return
        except BaseException as exc:  # handed over, raised in the reading thread
            hand(_DONE, exc)
            return
        hand(_DONE)

    def consume() -> Iterator[Any]:
        while True:
            item, error = handed.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item

    thread = threading.Thread(target=produce, name="feed-read-ahead", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


def _text_lines(block: bytes | list[str]) -> list[str]:
    """A block of :func:`_line_blocks` as the text reader's lines (a list of lines as it is)."""
    if isinstance(block, list):
        return block
    lines = block.decode("utf-8", "replace").split("\n")
    last = lines.pop()
    texts = [line + "\n" for line in lines]
    if last:
        texts.append(last)
    return texts


def _first_lines(block: bytes | list[str], count: int) -> list[str]:
    """The first ``count`` lines of a block, as text (without decoding the rest of it)."""
    if isinstance(block, list):
        return block[:count]
    end = 0
    for _ in range(count):
        end = block.find(b"\n", end) + 1
        if not end:
            end = len(block)
            break
    return _text_lines(block[:end])


def _blocks_until_error(lines: Iterable[str]) -> Iterator[list[str]]:
    """``lines`` in blocks, a line at a time, for decoders that may fail part-way (a cut-off
    file): the lines read before the error are yielded, then the error is raised."""
    block: list[str] = []
    try:
        for line in lines:
            block.append(line)
            if len(block) >= _CAREFUL_BLOCK_LINES:
                yield block
                block = []
    except _READ_ERRORS:
        if block:
            yield block
        raise
    if block:
        yield block


def _text_blocks(handle: Any) -> Iterator[list[str]]:
    with handle:
        while block := handle.readlines(_BLOCK_CHARS):
            yield block


def _open_blocks(path: Path, raw: bool = False) -> contextlib.closing[Iterator[Any]]:
    """Open gzip, lz4 or plain text by magic bytes, not name, as blocks of lines; bad bytes
    become malformed lines. ``raw``: gzip and plain text as blocks of bytes for the compiled
    scanner (:func:`_line_blocks`; lz4 stays text)."""
    with open(path, "rb") as probe:
        magic = probe.read(4)
    if magic[:2] == b"\x1f\x8b":
        return contextlib.closing(_gzip_byte_blocks(path) if raw else _gzip_blocks(path))
    if magic == _LZ4_MAGIC:
        import lz4.frame  # requirements-backtest.txt: the hyperliquid-archive files are lz4

        return contextlib.closing(
            _blocks_until_error(lz4.frame.open(path, "rt", encoding="utf-8", errors="replace"))
        )
    if raw:
        return contextlib.closing(_line_blocks(open(path, "rb")))
    return contextlib.closing(_text_blocks(open(path, encoding="utf-8", errors="replace")))


def detect_format(first_lines: list[str]) -> str | None:
    """The recording format of these first lines, or None when none matches."""
    for line in first_lines:
        text = line.strip()
        if not text:
            continue
        stamp, _, rest = text.partition(" ")
        if stamp.isdigit() and rest.lstrip().startswith("{"):
            return BINANCE_FORMAT
        if text.startswith("{") and '"channel"' in text[:400]:
            return HYPERLIQUID_FORMAT
        return None
    return None


def _unknown_format(path: Path, first_lines: list[str]) -> UnknownFeedFormat:
    sample = next((line.strip() for line in first_lines if line.strip()), "")
    shown = repr(sample[:40]) if sample else "no data lines"
    return UnknownFeedFormat(
        f"{path}: unknown market data format (starts with {shown}); supported: {'; '.join(SUPPORTED_FORMATS)}"
    )


def read_recorded_columns(
    path: str | Path,
    stats: FeedStats | None,
    allow_truncated: bool,
    builder: ColumnBuilder,
    compiled: bool = True,
) -> Iterator[None]:
    """Read a recording into ``builder``'s columns, its format detected from its first lines;
    one step (a None) per block of lines read, so a caller can take the rows as they come.

    Binance (``<receive-time-ns> <raw JSON>``): ``bookTicker`` lines become BBO rows, ``trade``
    lines trade rows (``m`` true means the buyer was the maker, so the aggressor sold); depth
    diffs and the REST snapshot are counted and skipped; the receive time is the event time.
    Hyperliquid: see :func:`_scan_hyperliquid`. Times are clamped so they never run backwards
    (see :class:`FeedStats`). Lines that cannot be used are counted in ``stats`` by kind (with
    the first few line numbers) and skipped; one warning with the counts is logged at the end.

    An unrecognised file raises :class:`UnknownFeedFormat` before any row. A compressed file
    that ends early or is corrupt sets ``stats.truncated``; with ``allow_truncated`` (the live
    paper venue) the rows before the damage stand and a warning is logged, without it
    (backtests, unless ``--allow-truncated``) :class:`TruncatedFeed` is raised once the readable
    part has been read, so no cache is written and a run never silently uses part of a file.

    Binance lines are read by the compiled scanner (:mod:`backtesting.binance_scan`) when it
    can be built and ``compiled`` is true, with the same result as the Python reader's.
    """
    feed_stats = stats if stats is not None else FeedStats()
    feed_path = Path(path)
    library = None
    if compiled:
        from backtesting import binance_scan  # ctypes and the build only where a recording is read

        library = binance_scan.load()
    try:
        with (
            _open_blocks(feed_path, raw=library is not None) as opened,
            _read_ahead(opened, library is not None) as read,
        ):
            # A read error (a cut-off file) is held until the lines before it are used: a
            # recording killed after a few lines still has its format found and its events read.
            failure: list[BaseException] = []
            blocks = _until_error(read, failure)
            head: list[Any] = []
            first_lines: list[str] = []
            while len(first_lines) < _SNIFF_LINES and (block := next(blocks, None)) is not None:
                head.append(block)
                first_lines += _first_lines(block, _SNIFF_LINES - len(first_lines))
            found = detect_format(first_lines)
            if found is None:
                if failure and not any(line.strip() for block in head for line in _text_lines(block)):
                    raise failure[0]  # cut off before its first line: truncated, not unknown
                raise _unknown_format(feed_path, first_lines)
            feed_stats.format = found
            rest = itertools.chain(head, blocks)
            if library is not None and found == BINANCE_FORMAT:
                yield from binance_scan.scan_binance(rest, feed_stats, builder, library)
            else:
                scan = _scan_binance if found == BINANCE_FORMAT else _scan_hyperliquid
                yield from scan(map(_text_lines, rest), feed_stats, builder)
            if failure:
                raise failure[0]
    except (EOFError, gzip.BadGzipFile, zlib.error, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "LZ4" not in str(exc).upper():
            raise
        feed_stats.truncated = True
        if not allow_truncated:
            raise TruncatedFeed(
                f"{feed_path}: compressed data ends early or is corrupt after line {feed_stats.lines_read} "
                f"({exc}); pass --allow-truncated to replay the {feed_stats.events_yielded:,} events "
                "before it"
            ) from None
        logger.warning("%s: feed ends early after line %d (%s)", feed_path, feed_stats.lines_read, exc)
    finally:
        if feed_stats.malformed_lines or feed_stats.clamped_timestamps:
            logger.warning("%s: %s", feed_path, feed_stats.summary())


def read_recorded_feed(
    path: str | Path, stats: FeedStats | None = None, allow_truncated: bool = True
) -> Iterator[MarketEvent]:
    """Yield the BBO and TRADE events of a recording (the paper venue's replay): the rows
    :func:`read_recorded_columns` reads, a block at a time, as MarketEvents, with the same
    counts, errors and warnings (closed part-way, the counts cover the whole block of lines it
    had read). The value table is started again once it holds ``_DECIMAL_CACHE_LIMIT`` values,
    so an endless replay holds a bounded one."""
    builder = ColumnBuilder()
    with contextlib.closing(read_recorded_columns(path, stats, allow_truncated, builder)) as steps:
        for _ in steps:
            yield from _drain(builder)


def _drain(builder: ColumnBuilder) -> Iterator[MarketEvent]:
    yield from column_events(builder.take(), builder.values)
    if len(builder.values) >= _DECIMAL_CACHE_LIMIT:
        builder.forget()


def column_events(columns: Columns, values: list[Decimal]) -> Iterator[MarketEvent]:
    """The rows of ``columns`` as MarketEvents, their numbers the very Decimals of ``values``."""
    times, kinds, first, second, third, fourth = columns
    make_bbo, make_trade = MarketEvent.bbo, MarketEvent.trade
    buy, sell = OrderSide.BUY, OrderSide.SELL
    for kind, timestamp, a, b, c, d in zip(kinds, times, first, second, third, fourth, strict=True):
        if kind == BBO:
            yield make_bbo(timestamp, values[a], values[b], values[c], values[d])
        else:
            yield make_trade(timestamp, values[a], values[b], buy if kind == BOUGHT else sell)


def add_event(builder: ColumnBuilder, event: MarketEvent) -> None:
    """One MarketEvent as a row of ``builder`` (the JSON paths' events; see also
    :func:`events_into`)."""
    if event.kind is _BBO:
        builder.bbo(event.timestamp, event.best_bid, event.best_ask, event.bid_size, event.ask_size)  # type: ignore[arg-type]
    else:
        builder.trade(event.timestamp, event.price, event.size, event.aggressor_side)  # type: ignore[arg-type]


def events_into(builder: ColumnBuilder, events: Iterable[MarketEvent], step: int) -> Iterator[None]:
    """``events`` added to ``builder`` as rows, one step (a None) per ``step`` events: the
    synthetic market's way into the columns (the same dispatch as :func:`add_event`, inlined:
    it runs once per event of millions)."""
    bbo, trade = builder.bbo, builder.trade
    times = builder.columns[0]
    iterator = iter(events)
    while True:
        before = len(times)
        for event in itertools.islice(iterator, step):
            if event.kind is _BBO:
                bbo(event.timestamp, event.best_bid, event.best_ask, event.bid_size, event.ask_size)  # type: ignore[arg-type]
            else:
                trade(event.timestamp, event.price, event.size, event.aggressor_side)  # type: ignore[arg-type]
        added = len(times) - before
        yield None
        if added < step:
            return


def _until_error(blocks: Iterable[list[str]], failure: list[BaseException]) -> Iterator[list[str]]:
    """``blocks`` up to a read error, which is put in ``failure`` instead of raised here."""
    try:
        yield from blocks
    except _READ_ERRORS as exc:
        failure.append(exc)


def _parse_lines(lines: Iterable[str], stats: FeedStats) -> Iterator[MarketEvent]:
    """The events of Binance ``lines`` (tests and tools): :func:`_scan_binance`'s rows."""
    builder = ColumnBuilder()
    with contextlib.closing(_scan_binance((list(lines),), stats, builder)) as steps:
        for _ in steps:
            yield from _drain(builder)


def _new_indexes(texts: tuple[str, ...], check: Callable[..., None], builder: ColumnBuilder) -> list[int]:
    """The value indexes of a line's number texts when one of them is new: each new text made a
    Decimal and checked (:func:`_checked_decimal`), the line's numbers checked together
    (``check``), and only then the new ones interned, in field order, so a refused line leaves
    the table as it was. (Plain loops: about one line in six of a recording comes here.)"""
    known, values = builder.known.get, builder.values
    numbers = []
    for text in texts:
        index = known(text)
        numbers.append(_checked_decimal(text) if index is None else values[index])
    check(*numbers)
    intern_text = builder.intern_text
    indexes = []
    for text, number in zip(texts, numbers, strict=True):
        index = known(text)
        indexes.append(intern_text(text, number) if index is None else index)
    return indexes


def _scan_binance(
    blocks: Iterable[list[str]],
    stats: FeedStats,
    builder: ColumnBuilder,
    first_line: int = 0,
    clock: list[float] | None = None,
) -> Iterator[None]:
    """The hot loop: a line's text straight into column indexes, one step per block of lines.

    Each line is classified by :data:`_BINANCE_LINE` (the whole line as Binance writes it, in
    one match) or, failing that, by the stream name near the line start, and only the fields
    used are read. A number text is looked up in the builder's ``known`` table; only a text not
    seen before becomes a Decimal, checked once (:func:`_checked_decimal`), and enters the value
    table once the line's event stands (so the table holds exactly the values events use, in the
    order they first use them). A line that fits neither layout is parsed as JSON.

    Counters live in locals and are written to ``stats`` when the loop ends (or is closed).
    ``first_line`` (the lines before these) and ``clock`` (``[the last event's time]``, read at
    the start and written at the end) let the compiled scanner hand over the lines it leaves to
    this reader, a run at a time, as if this loop had read the whole file.
    """
    symbols = stats.symbols
    known = builder.known
    values = builder.values
    times, kinds, first, second, third, fourth = builder.columns
    add_time, add_kind = times.append, kinds.append
    add_first, add_second, add_third, add_fourth = first.append, second.append, third.append, fourth.append
    match_line = _BINANCE_LINE.match
    book_search = _BOOK_TICKER_FIELDS.search
    trade_search = _TRADE_FIELDS.search
    zero = _ZERO
    prefix, prefix_length = _STREAM_PREFIX, len(_STREAM_PREFIX)
    max_digits, symbol_lines, one_billion = _MAX_TIMESTAMP_DIGITS, _SYMBOL_LINES, _ONE_BILLION
    bbo, bought, sold = BBO, BOUGHT, SOLD
    bbo_events = trade_events = depth_lines = other_lines = clamped = 0
    line_number = first_line
    last_time = clock[0] if clock is not None else -math.inf
    try:
        for block in blocks:
            for line in block:
                line_number += 1
                try:
                    match = match_line(line)
                    if match is not None:
                        (
                            stamp,
                            name,
                            bid_text,
                            bid_size_text,
                            ask_text,
                            ask_size_text,
                            price_text,
                            size_text,
                            maker,
                        ) = match.groups()
                        timestamp = int(stamp) / one_billion
                        if line_number <= symbol_lines and name:
                            symbol = name.upper()
                            if symbol not in symbols:
                                symbols.append(symbol)
                    else:
                        space = line.find(" ")
                        if space <= 0:
                            if line.strip():
                                raise _MalformedLine(BAD_TIMESTAMP)
                            other_lines += 1
                            continue
                        stamp = line[:space]
                        if space <= max_digits and stamp.isascii() and stamp.isdigit():
                            timestamp = int(stamp) / one_billion
                        else:
                            timestamp = _parse_timestamp(stamp)
                        if line.startswith(prefix, space + 1):
                            name_start = space + 1 + prefix_length
                            name_end = line.find('"', name_start)
                            if name_end < 0:
                                raise _MalformedLine(NOT_JSON)
                            at = line.find("@", name_start, name_end)
                            channel = line[at + 1 : name_end]
                            if line_number <= symbol_lines and at > name_start:
                                symbol = line[name_start:at].upper()
                                if symbol not in symbols:
                                    symbols.append(symbol)
                            if channel == "bookTicker":
                                match = book_search(line, name_end)
                                if match is not None:
                                    bid_text, bid_size_text, ask_text, ask_size_text = match.groups()
                            elif channel == "trade":
                                match = trade_search(line, name_end)
                                if match is not None:
                                    price_text, size_text, maker = match.groups()
                                    bid_text = None
                            elif channel.startswith("depth"):
                                depth_lines += 1
                                continue
                            else:
                                other_lines += 1
                                continue
                        if match is None:
                            event = _parse_json_line(line[space + 1 :], max(timestamp, last_time), stats)
                            if event is not None:
                                if timestamp < last_time:
                                    clamped += 1
                                else:
                                    last_time = timestamp
                                if event.kind is _BBO:
                                    bbo_events += 1
                                else:
                                    trade_events += 1
                                add_event(builder, event)
                            continue
                    if bid_text is not None:
                        try:
                            bid = known[bid_text]
                            ask = known[ask_text]
                            bid_size = known[bid_size_text]
                            ask_size = known[ask_size_text]
                        except KeyError:  # a number not seen before: checked, then interned
                            bid, ask, bid_size, ask_size = _new_indexes(
                                (bid_text, ask_text, bid_size_text, ask_size_text),
                                _check_book,
                                builder,
                            )
                        else:
                            # The table holds only values of events that passed these checks,
                            # as prices (> 0) or sizes (>= 0): no size from it is negative, so
                            # the prices are all that is left to check.
                            if not zero < values[bid] <= values[ask]:
                                _check_book(values[bid], values[ask], values[bid_size], values[ask_size])
                        if timestamp < last_time:
                            timestamp = last_time
                            clamped += 1
                        else:
                            last_time = timestamp
                        bbo_events += 1
                        add_time(timestamp)
                        add_kind(bbo)
                        add_first(bid)
                        add_second(ask)
                        add_third(bid_size)
                        add_fourth(ask_size)
                        continue
                    try:
                        price = known[price_text]
                        size = known[size_text]
                    except KeyError:
                        price, size = _new_indexes((price_text, size_text), _check_trade, builder)
                    else:
                        if not (zero < values[price] and zero < values[size]):
                            _check_trade(values[price], values[size])
                    if timestamp < last_time:
                        timestamp = last_time
                        clamped += 1
                    else:
                        last_time = timestamp
                    trade_events += 1
                    add_time(timestamp)
                    add_kind(sold if maker == "true" else bought)
                    add_first(price)
                    add_second(size)
                    add_third(0)
                    add_fourth(0)
                except _MalformedLine as exc:
                    stats._record_malformed(line_number, exc.kind)
                except safe_json.MalformedJSON as exc:
                    stats._record_malformed(line_number, TOO_DEEP if exc.kind == "too deep" else NOT_JSON)
                except (KeyError, TypeError, AttributeError, MalformedMessage):
                    stats._record_malformed(line_number, BAD_FIELDS)
                except (ArithmeticError, ValueError):  # InvalidOperation, OverflowError, ...
                    stats._record_malformed(line_number, BAD_NUMBER)
            yield None
    finally:
        stats.lines_read += line_number - first_line
        stats.bbo_events += bbo_events
        stats.trade_events += trade_events
        stats.events_yielded += bbo_events + trade_events
        stats.depth_lines += depth_lines
        stats.other_lines += other_lines
        stats.clamped_timestamps += clamped
        if clock is not None:
            clock[0] = last_time


def _parse_json_line(payload: str, timestamp: float, stats: FeedStats) -> MarketEvent | None:
    """The slow, general path for lines the fast path did not recognise (bounded by safe_json)."""
    message: Any = safe_json.loads(payload)
    if not isinstance(message, dict):
        raise _MalformedLine(NOT_JSON)
    stream = message.get("stream")
    if stream is None:
        if "lastUpdateId" in message:
            stats.snapshot_lines += 1
        else:
            stats.other_lines += 1
        return None
    data = message["data"]
    if not isinstance(data, dict):
        raise _MalformedLine(BAD_FIELDS)
    channel = str(stream).partition("@")[2]
    if channel == "bookTicker":
        best_bid, best_ask = _field_decimal(data["b"]), _field_decimal(data["a"])
        bid_size, ask_size = _field_decimal(data["B"]), _field_decimal(data["A"])
        _check_book(best_bid, best_ask, bid_size, ask_size)
        return MarketEvent.bbo(timestamp, best_bid, best_ask, bid_size, ask_size)
    if channel == "trade":
        price, size, buyer_is_maker = _field_decimal(data["p"]), _field_decimal(data["q"]), data["m"]
        if not isinstance(buyer_is_maker, bool):
            raise _MalformedLine(BAD_FIELDS)
        _check_trade(price, size)
        return MarketEvent.trade(timestamp, price, size, OrderSide.SELL if buyer_is_maker else OrderSide.BUY)
    if channel.startswith("depth"):
        stats.depth_lines += 1
    else:
        stats.other_lines += 1
    return None


def _scan_hyperliquid(
    blocks: Iterable[list[str]], stats: FeedStats, builder: ColumnBuilder
) -> Iterator[None]:
    """Hyperliquid recordings: one JSON message a line, bare (``{"channel": "l2Book", "data":
    {...}}``, as the websocket sends) or wrapped as in the public ``hyperliquid-archive``
    (``{"time": "<receive ISO time>", "ver_num": 1, "raw": {<that message>}}``).

    ``l2Book`` becomes a BBO event from the first level of each side (``levels[0]`` bids,
    ``levels[1]`` asks, each ``{"px", "sz", "n"}``); ``trades`` gives one TRADE event per trade
    (``side`` "B": the buyer took liquidity, "A": the seller). The venue's ``time`` (ms) is the
    event time: the archive's receive time is kept only to the second in some files. A book with
    an empty side, and other channels, are counted as other lines. The events go into
    ``builder`` as rows, one step (a None) per block of lines.
    """
    line_number = bbo_events = trade_events = other_lines = clamped = 0
    last_time = -math.inf
    symbols = stats.symbols
    try:
        for block in blocks:
            for line in block:
                line_number += 1
                if not line.strip():
                    other_lines += 1
                    continue
                try:
                    message: Any = safe_json.loads(line)
                    if not isinstance(message, dict):
                        raise _MalformedLine(NOT_JSON)
                    if "raw" in message and isinstance(message["raw"], dict):
                        message = message["raw"]
                    channel, data = message.get("channel"), message.get("data")
                    produced: list[MarketEvent] = []
                    if channel == "l2Book":
                        if not isinstance(data, dict) or not isinstance(data.get("levels"), list):
                            raise _MalformedLine(BAD_FIELDS)
                        bids, asks = data["levels"][0], data["levels"][1]
                        if not bids or not asks:
                            other_lines += 1
                            continue
                        best_bid, bid_size = _field_decimal(bids[0]["px"]), _field_decimal(bids[0]["sz"])
                        best_ask, ask_size = _field_decimal(asks[0]["px"]), _field_decimal(asks[0]["sz"])
                        _check_book(best_bid, best_ask, bid_size, ask_size)
                        timestamp = _hyperliquid_time(data.get("time"))
                        coin = data.get("coin")
                        produced.append(MarketEvent.bbo(timestamp, best_bid, best_ask, bid_size, ask_size))
                    elif channel == "trades":
                        if not isinstance(data, list):
                            raise _MalformedLine(BAD_FIELDS)
                        coin = None
                        for trade in data:
                            price, size = _field_decimal(trade["px"]), _field_decimal(trade["sz"])
                            _check_trade(price, size)
                            if trade.get("side") not in ("A", "B"):
                                raise _MalformedLine(BAD_FIELDS)
                            side = OrderSide.BUY if trade["side"] == "B" else OrderSide.SELL
                            coin = trade.get("coin", coin)
                            produced.append(
                                MarketEvent.trade(_hyperliquid_time(trade.get("time")), price, size, side)
                            )
                    else:
                        other_lines += 1
                        continue
                    if isinstance(coin, str) and line_number <= _SYMBOL_LINES and coin.upper() not in symbols:
                        symbols.append(coin.upper())
                except _MalformedLine as exc:
                    stats._record_malformed(line_number, exc.kind)
                    continue
                except safe_json.MalformedJSON as exc:
                    stats._record_malformed(line_number, TOO_DEEP if exc.kind == "too deep" else NOT_JSON)
                    continue
                except (KeyError, TypeError, AttributeError, IndexError, MalformedMessage):
                    stats._record_malformed(line_number, BAD_FIELDS)
                    continue
                except (ArithmeticError, ValueError):
                    stats._record_malformed(line_number, BAD_NUMBER)
                    continue
                for event in produced:
                    if event.timestamp < last_time:
                        event = _at_time(event, last_time)
                        clamped += 1
                    else:
                        last_time = event.timestamp
                    if event.kind is _BBO:
                        bbo_events += 1
                    else:
                        trade_events += 1
                    add_event(builder, event)
            yield None
    finally:
        stats.lines_read += line_number
        stats.bbo_events += bbo_events
        stats.trade_events += trade_events
        stats.events_yielded += bbo_events + trade_events
        stats.other_lines += other_lines
        stats.clamped_timestamps += clamped


def _hyperliquid_time(value: Any) -> float:
    """Hyperliquid's ``time``: integer milliseconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**15:
        raise _MalformedLine(BAD_TIMESTAMP)
    return value / 1000


def _at_time(event: MarketEvent, timestamp: float) -> MarketEvent:
    if event.kind is _BBO:
        return MarketEvent.bbo(timestamp, event.best_bid, event.best_ask, event.bid_size, event.ask_size)  # type: ignore[arg-type]
    return MarketEvent.trade(timestamp, event.price, event.size, event.aggressor_side)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Synthetic market
# ---------------------------------------------------------------------------------------------

DEFAULT_SEED = 7
DEFAULT_START_PRICE = Decimal("60000")
#: 0.5 bp per 0.2 s step ≈ 8.7 bp per minute ≈ 63 % a year: BTC-like, and enough movement for a
#: grid with a 0.02 % take-profit to see fills within a minute.
DEFAULT_VOLATILITY_BPS = Decimal("0.5")
DEFAULT_SPREAD_TICKS = 1
DEFAULT_TICK_SIZE = Decimal("0.1")
DEFAULT_SIZE_STEP = Decimal("0.001")
DEFAULT_STEP_SECONDS = 0.2
DEFAULT_TRADE_PROBABILITY = 0.5


class SyntheticMarket:
    """A seeded, reproducible BTC-like market: one BBO per step, sometimes a trade print.

    Each step of ``step_seconds``:

    * the mid moves by a geometric random walk: ``mid *= exp(N(0, volatility_bps / 10_000))``,
      so ``volatility_bps`` is the per-step standard deviation of the log return in basis points;
    * the spread (in ticks) mean-reverts towards ``spread_ticks`` with noise and is never below
      one tick; the quote is snapped to ``tick_size``;
    * bid and ask sizes are random multiples of ``size_step``;
    * with probability ``trade_probability`` a trade prints at the new touch — at the ask by a
      buyer or at the bid by a seller, with equal odds — for a random multiple of ``size_step``.

    Iterating starts again from ``seed``, so two iterations (or two markets with the same
    parameters) yield identical events. The sequence never ends; slice it.
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        start_price: Decimal = DEFAULT_START_PRICE,
        volatility_bps: Decimal = DEFAULT_VOLATILITY_BPS,
        spread_ticks: int = DEFAULT_SPREAD_TICKS,
        tick_size: Decimal = DEFAULT_TICK_SIZE,
        size_step: Decimal = DEFAULT_SIZE_STEP,
        step_seconds: float = DEFAULT_STEP_SECONDS,
        start_time: float = 0.0,
        trade_probability: float = DEFAULT_TRADE_PROBABILITY,
        max_trade_steps: int = 200,
        max_quote_steps: int = 5000,
    ) -> None:
        if start_price <= 0 or tick_size <= 0 or size_step <= 0:
            raise ValueError("start_price, tick_size and size_step must be positive")
        if volatility_bps < 0 or spread_ticks < 1 or step_seconds <= 0:
            raise ValueError("volatility_bps must be >= 0, spread_ticks >= 1 and step_seconds > 0")
        if not 0.0 <= trade_probability <= 1.0 or max_trade_steps < 1 or max_quote_steps < 1:
            raise ValueError("trade_probability must be in [0, 1] and the size ranges at least 1")
        self.seed = seed
        self.start_price = start_price
        self.volatility_bps = volatility_bps
        self.spread_ticks = spread_ticks
        self.tick_size = tick_size
        self.size_step = size_step
        self.step_seconds = step_seconds
        self.start_time = start_time
        self.trade_probability = trade_probability
        self.max_trade_steps = max_trade_steps
        self.max_quote_steps = max_quote_steps

    def __iter__(self) -> Iterator[MarketEvent]:
        rng = random.Random(self.seed)
        uniform = rng.random
        quote_size = _SizeDraw(rng, self.max_quote_steps, self.size_step)
        trade_size = _SizeDraw(rng, self.max_trade_steps, self.size_step)
        tick = self.tick_size
        log_sigma = float(self.volatility_bps) / 10_000
        mean_spread = float(self.spread_ticks)
        spread_level = mean_spread
        mid_ticks = float(self.start_price / tick)
        make_bbo, make_trade = MarketEvent.bbo, MarketEvent.trade
        buy, sell = OrderSide.BUY, OrderSide.SELL
        trade_probability = self.trade_probability
        start_time, step_seconds = self.start_time, self.step_seconds
        exp, sqrt, log, cos, sin, two_pi = math.exp, math.sqrt, math.log, math.cos, math.sin, math.tau
        prices: dict[int, Decimal] = {}
        index = 0
        while True:
            timestamp = start_time + index * step_seconds
            index += 1
            if index > 1:
                # Two normal draws, as random.Random.gauss makes them (Box-Muller, one pair per
                # two draws): the same stream as calling gauss() twice, without two method calls.
                angle = uniform() * two_pi
                radius = sqrt(-2.0 * log(1.0 - uniform()))
                mid_ticks *= exp(0.0 + cos(angle) * radius * log_sigma)
                spread_level += 0.3 * (mean_spread - spread_level) + (0.0 + sin(angle) * radius * 0.5)
            spread = max(1, round(spread_level))
            bid_ticks = max(1, round(mid_ticks - spread / 2))
            best_bid = prices.get(bid_ticks)
            if best_bid is None:
                best_bid = prices[bid_ticks] = _price(bid_ticks, tick, prices)
            best_ask = prices.get(bid_ticks + spread)
            if best_ask is None:
                best_ask = prices[bid_ticks + spread] = _price(bid_ticks + spread, tick, prices)
            bid_size = quote_size()
            ask_size = quote_size()
            yield make_bbo(timestamp, best_bid, best_ask, bid_size, ask_size)
            if uniform() < trade_probability:
                size = trade_size()
                if uniform() < 0.5:
                    yield make_trade(timestamp, best_ask, size, buy)
                else:
                    yield make_trade(timestamp, best_bid, size, sell)


#: Prices remembered by a synthetic market before the memo starts again (bounds memory).
_PRICE_MEMO_LIMIT = 1 << 16


def _price(ticks: int, tick: Decimal, memo: dict[int, Decimal]) -> Decimal:
    if len(memo) >= _PRICE_MEMO_LIMIT:
        memo.clear()
    return Decimal(ticks) * tick


class _SizeDraw:
    """``Decimal(rng.randint(1, steps)) * step``, drawn the way ``randint`` draws, but cheaper.

    ``randint(1, n)`` is ``1 + _randbelow(n)``, and ``_randbelow`` takes ``getrandbits(k)`` for
    ``k = n.bit_length()`` until the value is below ``n``; repeating exactly that keeps the
    random stream (and so every seeded market) identical while skipping three Python-level
    calls per draw. The sizes themselves come from a table built as they are first drawn.
    """

    __slots__ = ("_bits", "_getrandbits", "_sizes", "_step", "_steps")

    def __init__(self, rng: random.Random, steps: int, step: Decimal) -> None:
        self._getrandbits = rng.getrandbits
        self._steps = steps
        self._bits = steps.bit_length()
        self._step = step
        self._sizes: list[Decimal | None] = [None] * (steps + 1)

    def __call__(self) -> Decimal:
        steps, bits, getrandbits = self._steps, self._bits, self._getrandbits
        drawn = getrandbits(bits)
        while drawn >= steps:
            drawn = getrandbits(bits)
        drawn += 1
        size = self._sizes[drawn]
        if size is None:
            size = self._sizes[drawn] = Decimal(drawn) * self._step
        return size
