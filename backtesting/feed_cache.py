"""Compact, pre-decoded market data, so replays skip gzip, text parsing and random draws.

Reading the gzip text feed costs about 5 µs an event (decompression, line classification,
regular expressions, Decimal construction) and the synthetic market about 3 µs (random draws,
Decimal arithmetic); a backtest wants the events themselves. The first run over a source writes
a cache file holding every event as fixed-width binary columns plus one table of the distinct
decimal values. Later runs read the columns in chunks (memory stays flat however long the
feed) and hand the venue the very Decimal objects of the table, or rebuild the same
:class:`~backtesting.market_feed.MarketEvent` objects from them.

File layout (little-endian), written atomically:

* ``PDBFEED`` magic and a format version byte;
* a JSON header (length-prefixed): the source's identity, the reader's
  :class:`~backtesting.market_feed.FeedStats`, the event count and the first/last times;
* the value table: distinct decimal strings joined by newlines (length-prefixed);
* the values' ranks (length-prefixed uint32s): each value's place among the distinct values
  sorted by size, equal values (``1.0`` and ``1.00``) sharing one, so a backtest can compare
  prices as integers without sorting the table again;
* six columns of ``count`` entries each: time in epoch seconds exactly as the source gave it
  (float64), kind (int8: 0 BBO, 1 trade where the buyer took liquidity, 2 the seller) and four
  uint32 indexes into the value table (BBO: bid, ask, bid size, ask size; trade: price, size,
  0, 0).

A recorded feed's cache is keyed by the file's resolved path, size and modification time (a
changed feed gets a new file); a synthetic market's by its parameters and event count. Decimal
strings round-trip exactly (``1.0`` and ``1.00`` stay distinct) and times are stored as the
floats the source produced, so a cached replay is identical to reading the source.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from backtesting.market_feed import FeedStats, MarketEvent, MarketEventKind, TruncatedFeed, read_recorded_feed
from exchanges.base import OrderSide

MAGIC = b"PDBFEED"
#: 2: the reader clamps backward timestamps and FeedStats counts skipped lines by kind, so
#: caches written by the version-1 reader are rebuilt rather than trusted. 3: FeedStats names
#: the recording's symbol (the run's ticker and instrument come from it). 4: the values' ranks.
FORMAT_VERSION = 4
BBO, BOUGHT, SOLD = 0, 1, 2
#: Events per chunk when streaming a cache file (about 1.6 MB of columns).
CHUNK_EVENTS = 65536
_TYPECODES = ("d", "b", "I", "I", "I", "I")
_LENGTH = struct.Struct("<Q")

Columns = tuple[array, array, array, array, array, array]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/perp-dex-bot/feeds`` (``~/.cache/...``): outside any read-only data folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perp-dex-bot" / "feeds"


def recorded_identity(source: str | Path) -> dict[str, Any]:
    """What names a recorded feed's cache: the file's resolved path, size and modification time."""
    path = Path(source)
    status = path.stat()
    return {"path": str(path.resolve()), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def cache_path(identity: dict[str, Any], name: str, cache_dir: str | Path | None = None) -> Path:
    """The cache file for a source ``identity``: a hash of it and the format version."""
    digest = hashlib.sha256(json.dumps([identity, FORMAT_VERSION], sort_keys=True).encode()).hexdigest()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{name}.{digest[:16]}.pdbfeed"


def cache_path_for(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where the cache of the recorded feed ``source`` lives."""
    return cache_path(recorded_identity(source), Path(source).name, cache_dir)


@dataclass
class CachedFeed:
    """A source's events as columns, in memory (``columns``) or streamed from ``path`` in chunks.

    Iterate it (any number of times) for MarketEvents, or use :meth:`chunks` for the columns.
    """

    count: int
    values: list[Decimal]
    stats: FeedStats
    source: dict[str, Any]
    first_time: float | None
    last_time: float | None
    columns: Columns | None = None
    path: Path | None = None
    #: Each value's rank by size (see :func:`value_ranks`); None until worked out.
    ranks: array | None = None
    column_offsets: tuple[int, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return self.count

    def time_at(self, index: int) -> float:
        """The time of event ``index`` (reads one value when streaming from a file)."""
        if self.columns is not None:
            return self.columns[0][index]
        assert self.path is not None
        column = array("d")
        with open(self.path, "rb") as handle:
            handle.seek(self.column_offsets[0] + index * column.itemsize)
            column.frombytes(handle.read(column.itemsize))
        return _little_endian(column)[0]

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[Columns]:
        """Columns of events ``start`` to ``stop`` (indexes), a chunk at a time."""
        end = self.count if stop is None else min(stop, self.count)
        if self.columns is not None:
            if start == 0 and end == self.count:
                yield self.columns
            elif start < end:
                yield tuple(column[start:end] for column in self.columns)  # type: ignore[misc]
            return
        assert self.path is not None
        with open(self.path, "rb") as handle:
            for chunk_start in range(start, end, CHUNK_EVENTS):
                chunk_end = min(end, chunk_start + CHUNK_EVENTS)
                columns = []
                for typecode, offset in zip(_TYPECODES, self.column_offsets, strict=True):
                    column = array(typecode)
                    handle.seek(offset + chunk_start * column.itemsize)
                    column.frombytes(handle.read((chunk_end - chunk_start) * column.itemsize))
                    columns.append(_little_endian(column))
                yield tuple(columns)  # type: ignore[misc]

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[MarketEvent]:
        """Events ``start`` to ``stop`` (indexes), identical to what the source yielded."""
        values = self.values
        make_bbo, make_trade = MarketEvent.bbo, MarketEvent.trade
        buy, sell = OrderSide.BUY, OrderSide.SELL
        for times, kinds, first, second, third, fourth in self.chunks(start, stop):
            for kind, timestamp, a, b, c, d in zip(kinds, times, first, second, third, fourth, strict=True):
                if kind == BBO:
                    yield make_bbo(timestamp, values[a], values[b], values[c], values[d])
                else:
                    yield make_trade(timestamp, values[a], values[b], buy if kind == BOUGHT else sell)


def value_ranks(values: list[Decimal]) -> array:
    """Each value's place among the distinct values sorted by size (equal values share one)."""
    ranks = array("I", bytes(4 * len(values)))
    rank, previous = -1, None
    for index in sorted(range(len(values)), key=values.__getitem__):
        value = values[index]
        if previous is None or value != previous:
            rank += 1
            previous = value
        ranks[index] = rank
    return ranks


def feed_ranks(feed: CachedFeed) -> array:
    """The feed's value ranks, worked out once."""
    if feed.ranks is None:
        feed.ranks = value_ranks(feed.values)
    return feed.ranks


#: bytes.translate table: a kind byte becomes 1 for a quote, 0 for a trade (a C-speed selector).
_IS_BBO = bytes(1 if kind == BBO else 0 for kind in range(256))


def sample_prices(feed: CachedFeed, events: int = CHUNK_EVENTS) -> set[Decimal]:
    """The distinct prices (quotes and trades) among the first ``events`` events: enough to see
    the price granularity of the data without reading all of it."""
    indexes: set[int] = set()
    for _times, kinds, first, second, _third, _fourth in feed.chunks(0, min(events, feed.count)):
        indexes.update(first)
        indexes.update(itertools.compress(second, kinds.tobytes().translate(_IS_BBO)))
    return {feed.values[index] for index in indexes}


class _ColumnBuilder:
    """Columns being filled, each distinct decimal value interned once.

    Sources hand out the same Decimal objects again and again (the reader's and the synthetic
    market's memos), so most values are found by identity, without formatting their text.
    Only objects held in ``values`` are keyed by id: they stay alive, so an id never changes
    hands while this runs. ``bbo`` and ``trade`` take an event's fields, as the feed reader's
    builders (see :func:`~backtesting.market_feed.read_recorded_feed`), so the first read of a
    recording goes straight into columns without building event objects.
    """

    def __init__(self) -> None:
        self.columns: Columns = (array("d"), array("b"), array("I"), array("I"), array("I"), array("I"))
        values: list[Decimal] = []
        self.values = values
        # The closures below hold these, never ``self``: no reference cycle keeps the tables (and
        # the columns) alive after the feed is built until the garbage collector runs.
        index_of: dict[tuple[Decimal, str], int] = {}
        identities: dict[int, int] = {}
        by_identity = identities.get

        def intern(value: Decimal) -> int:
            # Keyed by the text too: 1.0 and 1.00 are equal Decimals with different digits.
            key = (value, str(value))
            index = index_of.get(key)
            if index is None:
                index = index_of[key] = len(values)
                values.append(value)
                identities[id(value)] = index
            return index

        times, kinds, first, second, third, fourth = self.columns
        add_time, add_kind = times.append, kinds.append
        add_first, add_second, add_third, add_fourth = (
            first.append,
            second.append,
            third.append,
            fourth.append,
        )

        def bbo(
            timestamp: float, best_bid: Decimal, best_ask: Decimal, bid_size: Decimal, ask_size: Decimal
        ) -> None:
            add_time(timestamp)
            add_kind(BBO)
            index = by_identity(id(best_bid))
            add_first(intern(best_bid) if index is None else index)
            index = by_identity(id(best_ask))
            add_second(intern(best_ask) if index is None else index)
            index = by_identity(id(bid_size))
            add_third(intern(bid_size) if index is None else index)
            index = by_identity(id(ask_size))
            add_fourth(intern(ask_size) if index is None else index)

        def trade(timestamp: float, price: Decimal, size: Decimal, aggressor: OrderSide) -> None:
            add_time(timestamp)
            add_kind(BOUGHT if aggressor is OrderSide.BUY else SOLD)
            index = by_identity(id(price))
            add_first(intern(price) if index is None else index)
            index = by_identity(id(size))
            add_second(intern(size) if index is None else index)
            add_third(0)
            add_fourth(0)

        self.bbo = bbo
        self.trade = trade

    def feed(self, stats: FeedStats | None, source: dict[str, Any]) -> CachedFeed:
        times = self.columns[0]
        return CachedFeed(
            count=len(times),
            values=self.values,
            stats=stats if stats is not None else FeedStats(),
            source=source,
            first_time=times[0] if times else None,
            last_time=times[-1] if times else None,
            columns=self.columns,
        )


def columns_from_events(
    events: Iterable[MarketEvent], stats: FeedStats | None, source: dict[str, Any]
) -> CachedFeed:
    """Turn events into an in-memory :class:`CachedFeed` (interning each distinct value once)."""
    builder = _ColumnBuilder()
    bbo, trade, quote = builder.bbo, builder.trade, MarketEventKind.BBO
    for event in events:
        if event.kind is quote:
            bbo(event.timestamp, event.best_bid, event.best_ask, event.bid_size, event.ask_size)  # type: ignore[arg-type]
        else:
            trade(event.timestamp, event.price, event.size, event.aggressor_side)  # type: ignore[arg-type]
    return builder.feed(stats, source)


def build_cached_feed(source: str | Path, allow_truncated: bool = False) -> CachedFeed:
    """Read the recorded feed ``source`` with the feed reader, into memory as columns.

    An unknown format or (unless ``allow_truncated``) a cut-off compressed file raises a
    ValueError before anything is cached.
    """
    stats = FeedStats()
    builder = _ColumnBuilder()
    # The reader calls the builder for each event; what it yields (None) is dropped in C.
    collections.deque(
        read_recorded_feed(source, stats, allow_truncated, builder.bbo, builder.trade), maxlen=0
    )
    return builder.feed(stats, recorded_identity(source))


def write_cached_feed(feed: CachedFeed, path: Path) -> None:
    """Write an in-memory ``feed`` to ``path`` atomically (a temporary file renamed into place)."""
    assert feed.columns is not None
    header = json.dumps(
        {
            "source": feed.source,
            "stats": asdict(feed.stats),
            "count": feed.count,
            "first_time": feed.first_time,
            "last_time": feed.last_time,
        }
    ).encode()
    table = "\n".join(str(value) for value in feed.values).encode()
    ranks = _little_endian(feed_ranks(feed)).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(MAGIC + bytes([FORMAT_VERSION]))
            for blob in (header, table, ranks):
                out.write(_LENGTH.pack(len(blob)))
                out.write(blob)
            for column in feed.columns:
                _little_endian(column).tofile(out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_cached_feed(path: str | Path, in_memory: bool = False) -> CachedFeed:
    """Open a cache file (its columns streamed in chunks unless ``in_memory``).

    ValueError when it is not a cache of this format version or is truncated.
    """
    file_path = Path(path)
    size = file_path.stat().st_size
    with open(file_path, "rb") as handle:
        prefix = handle.read(len(MAGIC) + 1)
        if len(prefix) < len(MAGIC) + 1 or not prefix.startswith(MAGIC) or prefix[-1] != FORMAT_VERSION:
            raise ValueError(f"{path}: not a feed cache of format {FORMAT_VERSION}")
        blobs = []
        for _ in range(3):
            raw = handle.read(_LENGTH.size)
            if len(raw) != _LENGTH.size:
                raise ValueError(f"{path}: truncated feed cache")
            (length,) = _LENGTH.unpack(raw)
            blob = handle.read(length)
            if len(blob) != length:
                raise ValueError(f"{path}: truncated feed cache")
            blobs.append(blob)
        data_start = handle.tell()
    header = json.loads(blobs[0])
    text = blobs[1].decode()
    values = [Decimal(item) for item in text.split("\n")] if text else []
    ranks = array("I")
    ranks.frombytes(blobs[2])
    if len(ranks) != len(values):
        raise ValueError(f"{path}: truncated or corrupt feed cache")
    count = int(header["count"])
    offsets = []
    offset = data_start
    for typecode in _TYPECODES:
        offsets.append(offset)
        offset += array(typecode).itemsize * count
    if offset != size:
        raise ValueError(f"{path}: truncated or corrupt feed cache")
    feed = CachedFeed(
        count=count,
        values=values,
        ranks=_little_endian(ranks),
        stats=FeedStats(**header["stats"]),
        source=header["source"],
        first_time=header["first_time"],
        last_time=header["last_time"],
        path=file_path,
        column_offsets=tuple(offsets),
    )
    if in_memory:
        feed.columns = _whole(feed)
        feed.path = None
    return feed


def _whole(feed: CachedFeed) -> Columns:
    merged: Columns = tuple(array(typecode) for typecode in _TYPECODES)  # type: ignore[assignment]
    for chunk in feed.chunks():
        for target, part in zip(merged, chunk, strict=True):
            target.extend(part)
    return merged


def _little_endian(column: array) -> array:
    """Columns are stored little-endian; swap on the rare big-endian machine."""
    if sys.byteorder == "big":
        column = array(column.typecode, column)
        column.byteswap()
    return column


def _load_or_build(
    identity: dict[str, Any], name: str, build: Any, cache_dir: str | Path | None, use_cache: bool
) -> CachedFeed:
    if not use_cache:
        return build()
    path = cache_path(identity, name, cache_dir)
    if path.is_file():
        try:
            feed = read_cached_feed(path)
        except (ValueError, OSError, KeyError, TypeError):
            feed = None
        if feed is not None and feed.source == identity:
            return feed
    built = build()
    write_cached_feed(built, path)
    return read_cached_feed(path)


def load_feed(
    source: str | Path,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    allow_truncated: bool = False,
) -> CachedFeed:
    """A recorded feed's events, from its cache when a valid one exists (writing it when not).

    A cache of a truncated file (written under ``allow_truncated``) is refused like the file.
    """
    feed = _load_or_build(
        recorded_identity(source),
        Path(source).name,
        lambda: build_cached_feed(source, allow_truncated),
        cache_dir,
        use_cache,
    )
    if feed.stats.truncated and not allow_truncated:
        raise TruncatedFeed(
            f"{source}: compressed data ends early or is corrupt; pass --allow-truncated to replay "
            f"the {feed.count:,} events before it"
        )
    return feed


def load_synthetic(
    parameters: dict[str, Any],
    events: Iterable[MarketEvent],
    count: int,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> CachedFeed:
    """The first ``count`` of ``events`` (a synthetic market described by ``parameters``), cached."""

    identity = {"synthetic": {key: str(value) for key, value in sorted(parameters.items())}, "count": count}
    return _load_or_build(
        identity,
        f"synthetic-{count}",
        lambda: columns_from_events(itertools.islice(events, count), None, identity),
        cache_dir,
        use_cache,
    )
