"""Compact, pre-decoded market data, so replays skip gzip, text parsing and random draws.

Reading the gzip text feed costs about 3.5 µs a line in Python (decompression, one regular
expression, a dict look-up per number; a Decimal only for a number not seen before), about
0.6 µs with the compiled scanner (:mod:`backtesting.binance_scan`), and the synthetic
market about 3 µs an event (random draws, Decimal arithmetic); a backtest wants the events
themselves. The first run over a source writes a cache file holding every event as
fixed-width binary columns plus one table of the distinct decimal values. Later runs read the
columns in chunks (memory stays flat however long the feed) and hand the venue the very Decimal
objects of the table, or rebuild the same :class:`~backtesting.market_feed.MarketEvent` objects
from them.

File layout (little-endian), written atomically and front to back, so the first run streams the
source into it a block at a time (memory stays flat however long the feed, writing included; a
source of a couple of blocks is held, written at its end and replayed from memory):

* ``PDBFEED`` magic and a format version byte;
* the events in blocks of ``block_events`` (the last one shorter), each block six columns of its
  events: time in epoch seconds exactly as the source gave it (float64), kind (int8: 0 BBO, 1
  trade where the buyer took liquidity, 2 the seller) and four uint32 indexes into the value
  table (BBO: bid, ask, bid size, ask size; trade: price, size, 0, 0);
* a JSON header (length-prefixed): the source's identity, the reader's
  :class:`~backtesting.market_feed.FeedStats`, the event count, ``block_events`` and the
  first/last times;
* the value table: distinct decimal strings joined by newlines (length-prefixed), sorted by
  size (equal values such as ``1.0`` and ``1.00``, distinct texts, next to each other in the
  order the source first showed them), so a backtest compares prices as their indexes (exactly,
  as small integers) and finds a price's index by bisection;
* the offset of the header (uint64), last, since it is known only once every event is written.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

# Every backtest uses the compiled library's column loops (the build itself waits for load()).
from backtesting import binance_scan

# The row kinds and the columns' type are the cache's as much as the reader's: re-exported.
from backtesting.event_columns import BBO as BBO
from backtesting.event_columns import BOUGHT as BOUGHT
from backtesting.event_columns import QUOTE_FLAGS, ColumnBuilder, column_address
from backtesting.event_columns import SOLD as SOLD
from backtesting.event_columns import Columns as Columns
from backtesting.market_feed import (
    FeedStats,
    MarketEvent,
    TruncatedFeed,
    column_events,
    events_into,
    read_recorded_columns,
)

MAGIC = b"PDBFEED"
#: 2: the reader clamps backward timestamps and FeedStats counts skipped lines by kind, so
#: caches written by the version-1 reader are rebuilt rather than trusted. 3: FeedStats names
#: the recording's symbol (the run's ticker and instrument come from it). 4: the values' ranks.
#: 5: events in blocks, the header and table after them (written as the source is read).
#: 6: the value table sorted by size (an index orders as its value does), no ranks.
FORMAT_VERSION = 6
#: Events per block of a cache file, and per chunk when streaming it (about 1.4 MB of columns).
CHUNK_EVENTS = 65536
_TYPECODES = ("d", "b", "I", "I", "I", "I")
_ITEMSIZES = tuple(array(typecode).itemsize for typecode in _TYPECODES)
_EVENT_BYTES = sum(_ITEMSIZES)
_LENGTH = struct.Struct("<Q")


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


_Derived = TypeVar("_Derived")


@dataclass
class CachedFeed:
    """A source's events as columns, in memory (``columns``) or streamed from ``path`` in chunks.

    Iterate it (any number of times) for MarketEvents, or use :meth:`chunks` for the columns.
    ``values`` is sorted by size in every feed this module makes (read from a cache, or built in
    memory): event indexes compare as the values they name.
    """

    count: int
    values: list[Decimal]
    stats: FeedStats
    source: dict[str, Any]
    first_time: float | None
    last_time: float | None
    columns: Columns | None = None
    path: Path | None = None
    #: Where the first block starts in ``path``, and the events a block holds.
    data_start: int = 0
    block_events: int = CHUNK_EVENTS
    #: What :meth:`derived` worked out, shared by every feed read from the same cache file in
    #: this process (see :class:`_TableMemo`).
    facts: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.count

    def derived(self, name: str, compute: Callable[[CachedFeed], _Derived]) -> _Derived:
        """``compute(self)``, worked out once per cache file in a process (a sweep's runs, a
        benchmark's repeats): only for facts of the data alone, never of a run."""
        if name not in self.facts:
            self.facts[name] = compute(self)
        return self.facts[name]  # type: ignore[no-any-return]

    def time_at(self, index: int) -> float:
        """The time of event ``index`` (reads one value when streaming from a file)."""
        if self.columns is not None:
            return self.columns[0][index]
        assert self.path is not None
        column = array("d")
        with open(self.path, "rb") as handle:
            handle.seek(
                self._block_start(index // self.block_events) + index % self.block_events * column.itemsize
            )
            column.frombytes(handle.read(column.itemsize))
        return _little_endian(column)[0]

    def _block_start(self, block: int) -> int:
        return self.data_start + block * self.block_events * _EVENT_BYTES

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[Columns]:
        """Columns of events ``start`` to ``stop`` (indexes), a block at a time."""
        end = self.count if stop is None else min(stop, self.count)
        if self.columns is not None:
            if start == 0 and end == self.count:
                yield self.columns
            elif start < end:
                yield tuple(column[start:end] for column in self.columns)  # type: ignore[misc]
            return
        assert self.path is not None
        size = self.block_events
        with open(self.path, "rb") as handle:
            for block in range(start // size, (end + size - 1) // size if end > start else 0):
                first = block * size
                events = min(size, self.count - first)
                low, high = max(start - first, 0), min(end - first, events)
                columns = []
                # Column by column: only the events asked for are read, one column's bytes at a time.
                offset = self._block_start(block)
                for typecode, itemsize in zip(_TYPECODES, _ITEMSIZES, strict=True):
                    column = array(typecode)
                    handle.seek(offset + low * itemsize)
                    column.frombytes(handle.read((high - low) * itemsize))
                    columns.append(_little_endian(column))
                    offset += events * itemsize
                yield tuple(columns)  # type: ignore[misc]

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[MarketEvent]:
        """Events ``start`` to ``stop`` (indexes), identical to what the source yielded."""
        for chunk in self.chunks(start, stop):
            yield from column_events(chunk, self.values)


@dataclass
class SortedTable:
    """A value table sorted by size (stable: equal values keep their order)."""

    values: list[Decimal]
    #: Each old index's new index (uint32); None when the table was sorted already.
    mapping: array | None
    #: The sorted values' texts joined by newlines, as the cache file stores them, when the
    #: sort had them at hand (the compiled sort); None: not made.
    text: bytes | None = None


def sorted_table(values: list[Decimal] | None, text: bytes | bytearray | None = None) -> SortedTable:
    """``values`` sorted by size, and how their indexes are renamed. ``text``: their texts
    joined by newlines when the caller has them (:attr:`ColumnBuilder.table_text`). ``values``
    None: they are not made yet, and are made from ``text`` (each its value's ``str``), in the
    sorted order.

    Sorting 16,000 Decimals in Python costs about 6 ms (the comparisons); the compiled library
    (``bs_sort_table``) sorts their texts as integer keys in well under one and writes the
    sorted table's text on the way, which the cache file needs anyway. A text it does not read
    (an exponent, a sign, more than 18 digits either side of the point), or values too large
    for 64 bits in units of the table's finest decimal, leave the sort to Python, with the same
    result.
    """
    library = native_library()
    if values is None:
        assert text is not None, "a table whose values are not made is given by its text"
    if library is not None and (values or (values is None and text)):
        text = bytes(text) if text is not None else _table_text(values)
        count = len(values) if values is not None else text.count(b"\n") + 1
        order, mapping = array("I", bytes(4 * count)), array("I", bytes(4 * count))
        sorted_text = array("B", bytes(len(text)))
        verdict = library.bs_sort_table(
            text,
            len(text),
            count,
            column_address(order),
            column_address(mapping),
            column_address(sorted_text),
        )
        if verdict >= 0:  # 1: sorted already (nothing written); 0: sorted
            renamed = mapping if verdict == 0 else None
            table_text = sorted_text.tobytes() if verdict == 0 else text
            if values is None:  # made now, in the sorted order
                return SortedTable(_made(table_text), renamed, table_text)
            ordered = values if verdict == 1 else list(map(values.__getitem__, order))
            return SortedTable(ordered, renamed, table_text)
    if values is None:
        values = _made(text)
    order_list = sorted(range(len(values)), key=values.__getitem__)
    if order_list == list(range(len(values))):
        return SortedTable(values, None)
    mapping = array("I", bytes(4 * len(values)))
    for new, old in enumerate(order_list):
        mapping[old] = new
    return SortedTable([values[old] for old in order_list], mapping)


def _made(text: bytes | bytearray) -> list[Decimal]:
    """The values a table's text (texts joined by newlines) spells, in its order."""
    return list(map(Decimal, text.decode("ascii").split("\n"))) if text else []


def _table_text(values: list[Decimal]) -> bytes:
    """The values' texts joined by newlines (the cache file's table): a slice at a time, never
    a string object per value of the whole table at once."""
    return "\n".join(
        "\n".join(map(str, values[start : start + 4096])) for start in range(0, len(values), 4096)
    ).encode()


def remap_columns(columns: Columns, mapping: array) -> None:
    """Rename the value indexes of ``columns`` in place: ``mapping[old]`` is the new index. A
    trade's third and fourth indexes stay 0 (they name no value). In C when the compiled
    scanner's library is at hand (:mod:`backtesting.binance_scan`), else a Python loop."""
    _times, kinds, first, second, third, fourth = columns
    count = len(kinds)
    library = native_library()
    if library is not None:
        address = column_address
        library.bs_remap(
            address(kinds),
            address(first),
            address(second),
            address(third),
            address(fourth),
            count,
            address(mapping),
        )
        return
    new = mapping.__getitem__
    quotes = kinds.tobytes().translate(QUOTE_FLAGS)
    first[:] = array("I", map(new, first))
    second[:] = array("I", map(new, second))
    third[:] = array("I", (new(index) if quote else 0 for index, quote in zip(third, quotes, strict=True)))
    fourth[:] = array("I", (new(index) if quote else 0 for index, quote in zip(fourth, quotes, strict=True)))


def native_library() -> Any:
    """The compiled library of :mod:`backtesting.binance_scan` for the column loops (None
    without a compiler, or with ``PERP_DEX_BOT_FEED_SCANNER=python``: the Python loops)."""
    return binance_scan.load()


def sample_prices(feed: CachedFeed, events: int = CHUNK_EVENTS) -> list[Decimal]:
    """The prices (quotes and trades) among the first ``events`` events, each value table entry
    once, in table order: enough to see the price granularity of the data without reading all
    of it. The indexes used are marked in C when the compiled library is at hand (a set of a
    chunk's indexes costs milliseconds), and the prices are not put in a set (a Decimal's first
    hash costs about a microsecond: 2 ms of a first read of the shared feed)."""
    chunks = feed.chunks(0, min(events, feed.count))
    library = native_library()
    if library is not None:
        marks = array("B", bytes(len(feed.values)))
        for _times, kinds, first, second, _third, _fourth in chunks:
            if library.bs_mark_prices(
                column_address(kinds),
                column_address(first),
                column_address(second),
                len(kinds),
                column_address(marks),
                len(marks),
            ):
                raise IndexError(f"{feed.path}: a value index beyond the value table (a damaged cache)")
        return list(itertools.compress(feed.values, marks))
    indexes: set[int] = set()
    for _times, kinds, first, second, _third, _fourth in chunks:
        indexes.update(first)
        indexes.update(itertools.compress(second, kinds.tobytes().translate(QUOTE_FLAGS)))
    return [feed.values[index] for index in sorted(indexes)]


def _in_memory(builder: ColumnBuilder, stats: FeedStats | None, source: dict[str, Any]) -> CachedFeed:
    """The rows ``builder`` holds as an in-memory feed (its columns, renamed in place for the
    table sorted by size)."""
    times = builder.columns[0]
    table = _sorted_in_place(builder)
    return CachedFeed(
        count=len(times),
        values=table.values,
        stats=stats if stats is not None else FeedStats(),
        source=source,
        first_time=times[0] if times else None,
        last_time=times[-1] if times else None,
        columns=builder.columns,
    )


def _sorted_in_place(builder: ColumnBuilder) -> SortedTable:
    """``builder``'s value table sorted by size, its columns renamed in place to match."""
    table = _sorted_builder_table(builder)
    if table.mapping is not None:
        remap_columns(builder.columns, table.mapping)
    return table


def _sorted_builder_table(builder: ColumnBuilder) -> SortedTable:
    """``builder``'s value table sorted by size. Its Decimals are made afresh from the sorted
    texts when most are not made yet (a first read by the compiled scanner: making the few that
    are again costs less than shuffling thousands of objects scattered in memory)."""
    unmade = 2 * builder.unmade_count >= builder.table_size
    return sorted_table(None if unmade else builder.values, builder.table_text)


def columns_from_events(
    events: Iterable[MarketEvent], stats: FeedStats | None, source: dict[str, Any]
) -> CachedFeed:
    """Turn events into an in-memory :class:`CachedFeed` (interning each distinct value once)."""
    builder = ColumnBuilder()
    collections.deque(events_into(builder, events, CHUNK_EVENTS), maxlen=0)  # run the steps, keep nothing
    return _in_memory(builder, stats, source)


def build_cached_feed(source: str | Path, allow_truncated: bool = False) -> CachedFeed:
    """Read the recorded feed ``source`` with the feed reader, into memory as columns.

    An unknown format or (unless ``allow_truncated``) a cut-off compressed file raises a
    ValueError before anything is cached.
    """
    stats = FeedStats()
    builder = ColumnBuilder()
    # The reader fills the builder's columns; what it yields (a None a block) is dropped in C.
    collections.deque(read_recorded_columns(source, stats, allow_truncated, builder), maxlen=0)
    return _in_memory(builder, stats, recorded_identity(source))


class _CacheWriter:
    """A cache file written front to back: blocks of events as they come, then the header and
    the value table. The blocks name values by the caller's table; :meth:`finish` takes it
    sorted and, unless the blocks already name the sorted table, renames the indexes of the
    blocks written (read back a block at a time). Atomic: a temporary file renamed into place
    by :meth:`finish`, removed by :meth:`discard` (an error, a refused truncated feed: no cache
    is left behind)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        self.out = os.fdopen(handle, "w+b")
        self.out.write(MAGIC + bytes([FORMAT_VERSION]))
        #: Each block's offset in the file and its number of events.
        self.blocks: list[tuple[int, int]] = []
        self.count = 0
        self.first_time: float | None = None
        self.last_time: float | None = None

    def write_block(self, columns: Columns) -> None:
        """One block: ``CHUNK_EVENTS`` events (fewer only for the last block)."""
        times = columns[0]
        if not times:
            return
        if self.first_time is None:
            self.first_time = times[0]
        self.last_time = times[-1]
        self.blocks.append((self.out.tell(), len(times)))
        self.count += len(times)
        for column in columns:
            _little_endian(column).tofile(self.out)

    def finish(self, table: SortedTable, stats: FeedStats, source: dict[str, Any]) -> None:
        """Write the header and the sorted ``table`` (the blocks written renamed to match by its
        ``mapping``), close and rename the file into place."""
        if table.mapping is not None:
            self._remap_blocks(table.mapping)
        header = json.dumps(
            {
                "source": source,
                "stats": asdict(stats),
                "count": self.count,
                "block_events": CHUNK_EVENTS,
                "first_time": self.first_time,
                "last_time": self.last_time,
            }
        ).encode()
        text = table.text if table.text is not None else _table_text(table.values)
        header_offset = self.out.tell()
        for blob in (header, text):
            self.out.write(_LENGTH.pack(len(blob)))
            self.out.write(blob)
        self.out.write(_LENGTH.pack(header_offset))
        self.out.close()
        os.replace(self.temporary, self.path)

    def _remap_blocks(self, mapping: array) -> None:
        """Rename the value indexes of every block written (see :func:`remap_columns`)."""
        out = self.out
        end = out.tell()
        times = array("d")  # not read: remap_columns takes a block's six columns
        for offset, events in self.blocks:
            kinds = array("b")
            out.seek(offset + events * times.itemsize)
            kinds.frombytes(out.read(events))
            indexes = out.tell()
            # The four index columns follow one another: read at once, renamed, written back.
            block = array("I")
            block.frombytes(out.read(4 * events * block.itemsize))
            block = _little_endian(block)
            columns = [array("I", block[part * events : (part + 1) * events]) for part in range(4)]
            remap_columns((times, kinds, *columns), mapping)  # type: ignore[arg-type]
            out.seek(indexes)
            for column in columns:
                _little_endian(column).tofile(out)
        out.seek(end)

    def discard(self) -> None:
        self.out.close()
        Path(self.temporary).unlink(missing_ok=True)


def write_cached_feed(feed: CachedFeed, path: Path) -> None:
    """Write an in-memory ``feed`` to ``path`` atomically (a temporary file renamed into place)."""
    assert feed.columns is not None
    writer = _CacheWriter(path)
    try:
        _write_blocks(writer, feed.columns)
        writer.finish(SortedTable(feed.values, None), feed.stats, feed.source)  # sorted already
    except BaseException:
        writer.discard()
        raise


def _write_blocks(writer: _CacheWriter, columns: Columns) -> None:
    """Write in-memory ``columns`` as the cache's blocks of ``CHUNK_EVENTS`` events."""
    for start in range(0, len(columns[0]), CHUNK_EVENTS):
        writer.write_block(tuple(column[start : start + CHUNK_EVENTS] for column in columns))  # type: ignore[arg-type]


def _streamed(
    path: Path, steps: Iterator[None], builder: ColumnBuilder, stats: FeedStats | None, source: dict[str, Any]
) -> CachedFeed:
    """Write the cache file of a source as it is read, and open it: each of ``steps`` adds some
    rows to ``builder`` (a block of lines, a run of synthetic events).

    A source of up to ``_HELD_BLOCKS`` blocks is held whole: its table sorted and its rows
    renamed in memory, written once, and handed back in memory, so the first run reads nothing
    back from the file (renaming the blocks written costs a read and a rewrite of each, and the
    run would read them again). A longer one is written ``CHUNK_EVENTS`` rows at a time as they
    fill a block, so only about a block of columns (and the value table) is ever held, however
    many events.
    """
    writer = _CacheWriter(path)
    stats = stats if stats is not None else FeedStats()
    try:
        held = True
        for _ in steps:
            if held and len(builder) > _HELD_BLOCKS * CHUNK_EVENTS:
                held = False
            if not held:
                while len(builder) >= CHUNK_EVENTS:
                    writer.write_block(builder.take(CHUNK_EVENTS))
        builder.release()
        if not held:
            table = _sorted_builder_table(builder)
            writer.write_block(builder.take())
            writer.finish(table, stats, source)
            # The values just written are handed over rather than parsed back from the file: the
            # same digits, without a second table of Decimals made while the first is freed.
            return read_cached_feed(path, values=table.values)
        table = _sorted_in_place(builder)
        columns = builder.columns
        _write_blocks(writer, columns)
        writer.finish(SortedTable(table.values, None, table.text), stats, source)  # written renamed
    except BaseException:
        writer.discard()
        raise
    feed = read_cached_feed(path, values=table.values)
    feed.columns = columns  # the rows just written: this run reads none of them back
    return feed


#: Blocks of a source the first read holds in memory whole (see :func:`_streamed`): 131,072
#: events, about 4 MB of columns.
_HELD_BLOCKS = 2


@dataclass
class _TableMemo:
    """The value table of the cache file read last in this process, and the facts derived from
    it (:meth:`CachedFeed.derived`): a sweep's runs, or a benchmark's repeats, on one feed parse
    the table (about 0.2 µs a value) and sample its prices once. Keyed by the file's identity
    (path, inode, size, modification time): a cache is written once and renamed into place, so
    a rewritten one is another inode. One file only: a second feed's table replaces it."""

    key: tuple[str, int, int, int]
    values: list[Decimal]
    facts: dict[str, Any]


_last_table: _TableMemo | None = None


def _file_key(path: Path) -> tuple[str, int, int, int]:
    status = path.stat()
    return (str(path.resolve()), status.st_ino, status.st_size, status.st_mtime_ns)


def read_cached_feed(
    path: str | Path, in_memory: bool = False, values: list[Decimal] | None = None
) -> CachedFeed:
    """Open a cache file (its columns streamed in blocks unless ``in_memory``).

    ``values``: the file's value table as its writer returned it (sorted; the file's table is
    then not parsed again). The table read last in this process is not parsed again either.

    ValueError when it is not a cache of this format version or is truncated.
    """
    global _last_table
    file_path = Path(path)
    key = _file_key(file_path)
    memo = _last_table if _last_table is not None and _last_table.key == key else None
    if memo is None:
        _last_table = None  # another file's table goes before this one is made
    elif values is None:
        values = memo.values
    size = key[2]
    data_start = len(MAGIC) + 1
    with open(file_path, "rb") as handle:
        prefix = handle.read(data_start)
        if len(prefix) < data_start or not prefix.startswith(MAGIC) or prefix[-1] != FORMAT_VERSION:
            raise ValueError(f"{path}: not a feed cache of format {FORMAT_VERSION}")
        if size < data_start + _LENGTH.size:
            raise ValueError(f"{path}: truncated feed cache")
        handle.seek(size - _LENGTH.size)
        (header_offset,) = _LENGTH.unpack(handle.read(_LENGTH.size))
        if not data_start <= header_offset <= size - _LENGTH.size:
            raise ValueError(f"{path}: truncated or corrupt feed cache")
        handle.seek(header_offset)
        blobs = []
        for _ in range(2):
            raw = handle.read(_LENGTH.size)
            if len(raw) != _LENGTH.size:
                raise ValueError(f"{path}: truncated feed cache")
            (length,) = _LENGTH.unpack(raw)
            blob = handle.read(length)
            if len(blob) != length:
                raise ValueError(f"{path}: truncated feed cache")
            blobs.append(blob)
        if handle.tell() != size - _LENGTH.size:
            raise ValueError(f"{path}: truncated or corrupt feed cache")
    header = json.loads(blobs[0])
    if values is None:
        text = blobs[1].decode()
        values = list(map(Decimal, text.split("\n"))) if text else []
    count = int(header["count"])
    block_events = int(header["block_events"])
    if block_events < 1 or data_start + count * _EVENT_BYTES != header_offset:
        raise ValueError(f"{path}: truncated or corrupt feed cache")
    if memo is None or memo.values is not values:
        memo = _last_table = _TableMemo(key, values, {})
    feed = CachedFeed(
        count=count,
        values=values,
        stats=FeedStats(**header["stats"]),
        source=header["source"],
        first_time=header["first_time"],
        last_time=header["last_time"],
        path=file_path,
        data_start=data_start,
        block_events=block_events,
        facts=memo.facts,
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
    identity: dict[str, Any],
    name: str,
    build: Any,
    stream: Any,
    cache_dir: str | Path | None,
    use_cache: bool,
) -> CachedFeed:
    """The cached feed of ``identity``: read when valid, else written by ``stream(path)`` (the
    source read straight into the file); ``build()`` gives it in memory when not caching."""
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
    return stream(path)  # type: ignore[no-any-return]


def _stream_events(events: Iterable[MarketEvent], identity: dict[str, Any], path: Path) -> CachedFeed:
    builder = ColumnBuilder()
    return _streamed(path, events_into(builder, events, CHUNK_EVENTS), builder, None, identity)


def _stream_recorded(source: str | Path, allow_truncated: bool, path: Path) -> CachedFeed:
    stats = FeedStats()
    identity = recorded_identity(source)
    builder = ColumnBuilder()
    steps = read_recorded_columns(source, stats, allow_truncated, builder)
    return _streamed(path, steps, builder, stats, identity)


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
        lambda path: _stream_recorded(source, allow_truncated, path),
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

    def stream(path: Path) -> CachedFeed:
        feed = _stream_events(itertools.islice(events, count), identity, path)
        # A generator's memos (the synthetic market's prices) go now rather than when the caller
        # drops it: ``events`` is not read again.
        close = getattr(events, "close", None)
        if close is not None:
            close()
        return feed

    return _load_or_build(
        identity,
        f"synthetic-{count}",
        lambda: columns_from_events(itertools.islice(events, count), None, identity),
        stream,
        cache_dir,
        use_cache,
    )
