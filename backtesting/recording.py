"""The venue recording format: what ``record.py`` writes and the backtester reads.

Why this format: it is the Binance combined-stream text the reader already knows
(``<receive-time-ns> <JSON>`` lines, gzip, as in ``shared/data``), so a recording of any venue
replays through the same reader, cache and fill model as the Binance tapes, with no second
parser to keep in step. What Binance's format does not carry (which venue and instrument, the
tick and fees, where the stream broke) goes into lines the reader counts as skipped.

A recording, line by line (``<ns>`` is the local receive time in nanoseconds since the epoch;
prices and sizes are the venue's own decimal strings; ``<sym>`` is the ticker in lower case):

1. ``<ns> {"recording": {...}}``: the header (:data:`FORMAT_VERSION`, venue, ticker, the venue's
   market id, start time, source URL and the instrument: kind, base, quote, settlement,
   tick_size, size_step, min_size, min_notional, contract_multiplier, maker_fee_pct and
   taker_fee_pct in percent). The backtest takes the instrument from it
   (:func:`read_header`, :func:`helpers.instruments.instrument_from_metadata`).
2. ``<ns> {"lastUpdateId": N, "bids": [[p, s], ...], "asks": [...]}``: a full book snapshot,
   written at the start and again after every resync.
3. ``<ns> {"stream": "<sym>@depth", "data": {"e": "depthUpdate", "E": ms, "U": first,
   "u": last, "pu": previous, "b": [[p, s]], "a": [[p, s]]}}``: a book diff (size "0" removes
   the level). Diffs continue the snapshot or diff before them (``pu`` equals the previous
   line's ``u``) except across a gap line.
4. ``<ns> {"stream": "<sym>@bookTicker", "data": {"e": "bookTicker", "u": N, "s": SYM, "b": bid,
   "B": bid size, "a": ask, "A": ask size, "E": ms, "T": ms}}``: the top of the recorded book,
   written whenever a price or size at the top changes.
5. ``<ns> {"stream": "<sym>@trade", "data": {"e": "trade", "E": ms, "T": ms, "s": SYM, "t": id,
   "p": price, "q": size, "m": buyer_is_maker}}``: a public trade (``m`` true: the seller took
   liquidity), each trade id once.
6. ``<ns> {"stream": "<sym>@gap", "data": {"e": "gap", "reason": text, "E": ms}}``: the stream
   broke (reconnect, book continuity lost, a crossed or malformed book message). **Gap rule**:
   between a gap line and the next snapshot line the recording knows nothing: no diff,
   bookTicker or trade is written until that snapshot arrives (nor before the first snapshot),
   and trades the venue replays on subscribing are never written (they may predate the gap or
   repeat ones written). A backtest therefore sees the last quote before the gap hold until the
   first quote after it, with no trades in between: nothing fills inside a gap. Counting the
   gap lines (``@gap`` streams; the backtest reports them as skipped lines) gives the number
   of breaks.

The file is gzip, flushed (``Z_SYNC_FLUSH``) every few seconds, so a recorder killed outright
leaves everything up to the last flush readable (the reader then calls the file truncated;
``--allow-truncated`` replays it); Ctrl-C or SIGTERM closes the gzip properly.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from helpers import safe_json

#: Bumped when a line's meaning changes; the reader refuses a newer version it does not know.
FORMAT_VERSION = 1
HEADER_KEY = "recording"
#: Seconds between two sync flushes of the gzip stream (what a kill -9 can lose at most).
DEFAULT_FLUSH_SECONDS = 2.0
#: The header is the first line; a longer first line is not a header written by record.py.
_MAX_HEADER_BYTES = 64 * 1024

Levels = Iterable[tuple[Decimal, Decimal]]


def _levels(levels: Levels) -> list[list[str]]:
    return [[str(price), str(size)] for price, size in levels]


def _dumps(message: Mapping[str, Any]) -> str:
    # Compact separators: the reader's fast path expects "b":"..","B":"..","a":"..","A":"..".
    return json.dumps(message, separators=(",", ":"))


@dataclass
class WriterCounts:
    """What a recording holds so far (record.py prints it at the end)."""

    lines: int = 0
    snapshots: int = 0
    depth_updates: int = 0
    book_tickers: int = 0
    trades: int = 0
    gaps: int = 0
    gap_reasons: list[str] = field(default_factory=list)


class RecordingWriter:
    """Writes one recording: header, snapshots, diffs, tops, trades and gap lines (see above).

    Memory stays flat: each line goes straight to the gzip stream, which zlib compresses in a
    bounded window; the stream is sync-flushed every ``flush_seconds``. ``close()`` writes the
    gzip trailer (safe to call twice).
    """

    def __init__(
        self,
        path: str | Path,
        ticker: str,
        *,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.ticker = ticker.upper()
        self._stream_prefix = f'{{"stream":"{ticker.lower()}@'
        self.flush_seconds = flush_seconds
        self._now_ns = now_ns
        self._file: IO[bytes] | None = gzip.open(self.path, "wb", compresslevel=6)
        self._last_flush = time.monotonic()
        self.counts = WriterCounts()
        self._top: tuple[Decimal, Decimal, Decimal, Decimal] | None = None
        self._top_id = 0
        #: True until the first snapshot and from a gap line until the next snapshot: nothing
        #: but a snapshot is written then (see the gap rule in the module docstring).
        self.in_gap = True
        #: Trades dropped because they arrived while the book was not known (gap rule).
        self.dropped_trades = 0

    # -- lines --------------------------------------------------------------------------------

    def _write(self, payload: str) -> None:
        if self._file is None:
            raise ValueError(f"recording {self.path} is closed")
        self._file.write(f"{self._now_ns()} {payload}\n".encode())
        self.counts.lines += 1
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def _stream(self, channel: str, data: str) -> None:
        self._write(f'{self._stream_prefix}{channel}","data":{data}}}')

    def header(self, metadata: Mapping[str, Any]) -> None:
        """The first line: the recording's metadata (see :func:`header_payload`)."""
        self._write(_dumps({HEADER_KEY: {"format_version": FORMAT_VERSION, **metadata}}))

    def snapshot(self, update_id: int, bids: Levels, asks: Levels) -> None:
        """A full book; ends a gap. The top is written after it by :meth:`top`."""
        self._write(_dumps({"lastUpdateId": update_id, "bids": _levels(bids), "asks": _levels(asks)}))
        self.counts.snapshots += 1
        self.in_gap = False
        self._top = None

    def depth(
        self, first_id: int, last_id: int, previous_id: int, bids: Levels, asks: Levels, event_ms: int
    ) -> None:
        if self.in_gap:
            return
        data = {
            "e": "depthUpdate",
            "E": event_ms,
            "U": first_id,
            "u": last_id,
            "pu": previous_id,
            "b": _levels(bids),
            "a": _levels(asks),
        }
        self._stream("depth", _dumps(data))
        self.counts.depth_updates += 1

    def top(self, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal, event_ms: int) -> bool:
        """A bookTicker line if the top changed (price or size); False when nothing was written."""
        top = (bid, bid_size, ask, ask_size)
        if self.in_gap or top == self._top:
            return False
        self._top = top
        self._top_id += 1
        self._stream(
            "bookTicker",
            f'{{"e":"bookTicker","u":{self._top_id},"s":"{self.ticker}","b":"{bid}","B":"{bid_size}",'
            f'"a":"{ask}","A":"{ask_size}","E":{int(event_ms)},"T":{int(event_ms)}}}',
        )
        self.counts.book_tickers += 1
        return True

    def trade(
        self, trade_id: int, price: Decimal, size: Decimal, buyer_is_maker: bool, trade_ms: int
    ) -> None:
        if self.in_gap:
            self.dropped_trades += 1
            return
        self._stream(
            "trade",
            f'{{"e":"trade","E":{int(trade_ms)},"T":{int(trade_ms)},"s":"{self.ticker}","t":{int(trade_id)},'
            f'"p":"{price}","q":"{size}","m":{"true" if buyer_is_maker else "false"}}}',
        )
        self.counts.trades += 1

    def gap(self, reason: str) -> None:
        """The stream broke: written once per gap (a second break before the snapshot adds
        nothing; before the first snapshot there is nothing to break)."""
        if self.in_gap:
            return
        self.in_gap = True
        self._top = None
        self._stream("gap", _dumps({"e": "gap", "reason": reason[:200], "E": self._now_ns() // 1_000_000}))
        self.counts.gaps += 1
        if len(self.counts.gap_reasons) < 20:
            self.counts.gap_reasons.append(reason[:200])

    # -- file ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Sync-flush: everything written so far becomes readable from the file."""
        if self._file is not None:
            self._file.flush()  # GzipFile.flush: a zlib Z_SYNC_FLUSH, then the file's flush
            self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None


# ---------------------------------------------------------------------------------------------
# Reading the header back
# ---------------------------------------------------------------------------------------------


class RecordingHeaderError(ValueError):
    """The recording's header is present but unusable (one line naming the file)."""


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The header of a recording written by record.py, or None for any other file.

    Reads only the first line (gzip or plain text). A header of a newer format version, or one
    that is not a JSON object, raises :class:`RecordingHeaderError`.
    """
    feed_path = Path(path)
    with open(feed_path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        opener: Any = gzip.open if gzipped else open
        with opener(feed_path, "rb") as source:
            first = source.readline(_MAX_HEADER_BYTES)
    except (OSError, EOFError, zlib.error):
        return None  # the feed reader reports unreadable data, with its own rules
    _stamp, _, payload = first.decode("utf-8", errors="replace").partition(" ")
    if f'"{HEADER_KEY}"' not in payload[:40]:
        return None
    try:
        message = safe_json.loads(payload)
    except safe_json.MalformedJSON:
        raise RecordingHeaderError(f"{feed_path}: the recording header is not valid JSON") from None
    header = message.get(HEADER_KEY) if isinstance(message, dict) else None
    if not isinstance(header, dict):
        raise RecordingHeaderError(f"{feed_path}: the recording header is not an object")
    version = header.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise RecordingHeaderError(
            f"{feed_path}: recording format version {version!r} is not one this backtester reads "
            f"(1..{FORMAT_VERSION})"
        )
    return header
