"""The cold read's compiled scanner: a Binance recording's decompressed bytes into columns.

A first backtest of a recording spends most of its time turning text into rows; Python costs
at least half a microsecond to a couple of microseconds a line, whatever parser it calls, and a
JSON parser cannot beat the reader's whole-line match either. So the lines in Binance's exact
bookTicker/trade layout are read by ``binance_scan.c``: one pass over a block of bytes (the
GIL released, so the next block can be decompressed meanwhile), with the number texts interned
in C and only the texts not seen before handed to Python, which decides their value indexes
(:meth:`ColumnBuilder.intern_texts`; their Decimals are made once the table is sorted, in its
order). Every other line (another layout, a number that is not a plain decimal, the REST
snapshot, a bad timestamp, a blank line, the lines read after a cut-off gzip's hand-over) goes
to the Python reader (:func:`backtesting.market_feed._scan_binance`), in order, with the same
clock and line numbers, so the result is the Python reader's, row for row, value for value,
count for count.

The C file is compiled once with the machine's C compiler (``$CC``, else ``cc``) into the user's
cache folder, keyed by a hash of its source and the compiler: numba was measured for this and
imports llvmlite's 178 MB library (150-180 MB peak RSS against a 60 MB budget); this module's
library is about 20 KB. Without a compiler, or with ``PERP_DEX_BOT_FEED_SCANNER=python``, the
reader is the Python one, with the same results.

The library also holds the backtest's other loops over columns, each standing in for a Python
loop kept as the fallback (the same setting selects it): renaming value indexes once a cache's
table is sorted (``bs_remap``, :func:`backtesting.feed_cache.remap_columns`), the end of a quiet
run (``bs_quiet_end``, ``backtesting.engine._QuietRuns``), the prices a feed's first events
use (``bs_mark_prices``, :func:`backtesting.feed_cache.sample_prices`) and the value table's
sort by size (``bs_sort_table``, :func:`backtesting.feed_cache.sorted_table`).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path

from backtesting.event_columns import ColumnBuilder, column_address
from backtesting.market_feed import BAD_PRICE, BAD_SIZE, FeedStats, _scan_binance

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("binance_scan.c")
#: Set to ``python`` to read every line with the Python reader.
SCANNER_VARIABLE = "PERP_DEX_BOT_FEED_SCANNER"
#: No contraction into fused multiply-adds: sample times must round as Python's floats do.
_FLAGS = ("-O3", "-std=c99", "-ffp-contract=off", "-shared", "-fPIC")
#: After the source (a linker that drops unused libraries reads them in order).
_LIBRARIES = ("-lm",)
#: Distinct texts the C table holds before it starts again (about 10 MB at most; the shared feed
#: holds 16,000).
_TEXT_LIMIT = 1 << 17
_VERDICTS = {1: BAD_PRICE, 2: BAD_SIZE}
#: Lines scanned at a time: a block of a million blank lines takes a few MB of output, not 100.
_MAX_LINES = 1 << 15
#: Bytes per line the first scan of a block expects (the shared feed's average is about 300):
#: it sizes the output arrays, and a block of shorter lines takes a few more scans.
_LINE_BYTES = 128
#: bs_scan's counts, in order.
_COUNTS = 9
_SYMBOL_LINES = 1000

_library: ctypes.CDLL | None = None
_tried = False


class ScannerUnavailable(RuntimeError):
    """The C scanner could not be built or loaded (the reader falls back to Python)."""


def load() -> ctypes.CDLL | None:
    """The compiled scanner, built on first use; None when it cannot be (logged once) or when
    ``PERP_DEX_BOT_FEED_SCANNER=python`` asks for the Python reader."""
    global _library, _tried
    if os.environ.get(SCANNER_VARIABLE, "").lower() == "python":
        return None
    if not _tried:
        _tried = True
        try:
            _library = _bind(ctypes.CDLL(str(build())))
        except (ScannerUnavailable, OSError) as exc:
            logger.info("compiled feed scanner unavailable, reading with Python: %s", exc)
    return _library


def _cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perp-dex-bot" / "native"


def build(folder: Path | None = None) -> Path:
    """The shared library, compiled into ``folder`` (the user's cache by default) unless a copy
    built from the same source with the same compiler is there; ScannerUnavailable on failure."""
    compiler = shutil.which(os.environ.get("CC") or "cc")
    if compiler is None:
        raise ScannerUnavailable("no C compiler (cc) found")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(
        b"\0".join([source, compiler.encode(), " ".join(_FLAGS + _LIBRARIES).encode(), _machine().encode()])
    ).hexdigest()[:16]
    target = (folder or _cache_folder()) / f"binance_scan-{key}.so"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        os.close(handle)
    except OSError as exc:
        raise ScannerUnavailable(f"cannot write {target.parent}: {exc}") from None
    try:
        completed = subprocess.run(
            [compiler, *_FLAGS, "-o", temporary, str(SOURCE), *_LIBRARIES],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            raise ScannerUnavailable(f"{compiler} failed: {completed.stderr.strip()[-500:]}")
        os.replace(temporary, target)  # atomic: a concurrent build renames the same bytes
    except (OSError, subprocess.SubprocessError) as exc:
        raise ScannerUnavailable(f"{compiler} failed: {exc}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def _machine() -> str:
    """The machine's architecture, for the library's key (``platform`` costs 3 ms to import)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform

    return platform.machine()


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.bs_new.restype = pointer
    library.bs_new.argtypes = []
    library.bs_free.argtypes = [pointer]
    library.bs_forget.argtypes = [pointer]
    library.bs_texts.restype = ctypes.c_int32
    library.bs_texts.argtypes = [pointer]
    library.bs_scan.restype = ctypes.c_int
    library.bs_scan.argtypes = [pointer, ctypes.c_char_p, size, size, size, size] + [pointer] * 5
    library.bs_resolve.argtypes = [pointer, size, size, pointer]
    library.bs_commit.argtypes = [pointer, size, size, pointer] + [pointer] * 9
    library.bs_seconds.restype = ctypes.c_double
    library.bs_seconds.argtypes = [ctypes.c_uint64]
    library.bs_remap.restype = None
    library.bs_remap.argtypes = [pointer] * 5 + [size, pointer]
    library.bs_quiet_end.restype = size
    library.bs_quiet_end.argtypes = [pointer]
    for packed in ("bs_sample_points", "bs_quote_change", "bs_quote_sizes"):
        getattr(library, packed).restype = size
    library.bs_sample_points.argtypes = [pointer, pointer]
    library.bs_quote_change.argtypes = [pointer]
    library.bs_quote_sizes.argtypes = [pointer]
    library.bs_mark_prices.restype = ctypes.c_int
    library.bs_mark_prices.argtypes = [pointer] * 3 + [size, pointer, size]
    library.bs_sort_table.restype = ctypes.c_int
    library.bs_sort_table.argtypes = [ctypes.c_char_p, size, size, pointer, pointer, pointer]
    return library


class _Outputs:
    """The arrays the C side writes a block's results into, grown as blocks need."""

    def __init__(self) -> None:
        self.lines = 0
        self.counts = array("q", bytes(8 * _COUNTS))
        self.commit_counts = array("q", bytes(8 * 4))
        self.names = array("q", bytes(8 * 3 * _SYMBOL_LINES))
        self.text = array("B")
        self.fit(1 << 12, 1 << 20)

    def fit(self, lines: int, length: int) -> None:
        if lines > self.lines:
            lines = self.lines = max(lines, self.lines * 3 // 2)
            self.python_lines = array("q", bytes(8 * 3 * lines))
            self.queue_lines = array("q", bytes(8 * 4 * lines))
            self.times = array("d", bytes(8 * lines))
            self.kinds = array("b", bytes(lines))
            self.indexes = tuple(array("I", bytes(4 * lines)) for _ in range(4))
            self.columns = (self.times, self.kinds, *self.indexes)
            self.bad_lines = array("q", bytes(8 * lines))
            self.bad_kinds = array("b", bytes(lines))
        if length > len(self.text):
            self.text = array("B", bytes(max(length, len(self.text) * 3 // 2)))


def scan_binance(
    blocks: Iterable[bytes | list[str]], stats: FeedStats, builder: ColumnBuilder, library: ctypes.CDLL
) -> Iterator[None]:
    """:func:`backtesting.market_feed._scan_binance`'s rows, counts and steps (a None per block),
    from blocks of whole lines as bytes (newlines already ``\\n``), or lists of text lines (read
    by the Python reader, like every line the scanner leaves to it)."""
    scanner = library.bs_new()
    if not scanner:
        raise MemoryError("binance scanner")
    out = _Outputs()
    clock = [-float("inf")]
    line_number = 0
    table_size = 0
    #: Whether every text the scanner hands over is new to the builder (see intern_texts): true
    #: until the scanner's own table is started again while the builder's is kept.
    unseen = True
    try:
        for block in blocks:
            if isinstance(block, list):
                _python_lines(block, stats, builder, line_number, clock)
                line_number += len(block)
            else:
                restarted = builder.table_size < table_size  # the value table was started again
                if restarted or library.bs_texts(scanner) > _TEXT_LIMIT:
                    if not restarted:
                        unseen = False  # the scanner will hand over texts the builder holds
                    library.bs_forget(scanner)
                line_cap = min(_MAX_LINES, len(block) // _LINE_BYTES + 1)
                at = 0
                while at < len(block):
                    lines, at = _scan_block(
                        block, at, line_cap, stats, builder, library, scanner, out, line_number, clock, unseen
                    )
                    line_number += lines
                table_size = builder.table_size
            yield None
    finally:
        library.bs_free(scanner)


def _python_lines(
    lines: list[str], stats: FeedStats, builder: ColumnBuilder, first_line: int, clock: list[float]
) -> None:
    for _ in _scan_binance((lines,), stats, builder, first_line, clock):
        pass


def _scan_block(
    block: bytes,
    start: int,
    line_cap: int,
    stats: FeedStats,
    builder: ColumnBuilder,
    library: ctypes.CDLL,
    scanner: int,
    out: _Outputs,
    first_line: int,
    clock: list[float],
    unseen: bool,
) -> tuple[int, int]:
    """Up to ``line_cap`` lines of a block from byte ``start``: scanned in C, then taken in
    order, a run of scanned lines at a time (their new texts interned, their rows committed) up
    to each line the Python reader reads. Returns the number of lines and where they end."""
    out.fit(line_cap, len(block))
    counts = out.counts
    if library.bs_scan(
        scanner,
        block,
        len(block),
        start,
        line_cap,
        first_line,
        column_address(counts),
        column_address(out.python_lines),
        column_address(out.names),
        column_address(out.queue_lines),
        column_address(out.text),
    ):
        raise MemoryError("binance scanner")
    lines, python, names, queued, depth, other, text_bytes, scanned_to, unusual = counts
    texts = out.text[:text_bytes].tobytes().decode("ascii").split("\n") if queued else []
    python_lines, queue_lines, name_spans = out.python_lines, out.queue_lines, out.names
    commit_counts, bad_lines, bad_kinds = out.commit_counts, out.bad_lines, out.bad_kinds
    symbols = stats.symbols
    moment = ctypes.c_double(clock[0])
    commit_pointers = [
        ctypes.byref(moment),
        column_address(out.times),
        column_address(out.kinds),
        *map(column_address, out.indexes),
        column_address(bad_lines),
        column_address(bad_kinds),
        column_address(commit_counts),
    ]
    position = python_at = queue_at = name_at = 0
    events = quotes = clamped = 0
    while position < lines:
        stop = python_lines[3 * python_at] if python_at < python else lines
        if stop > position:
            queue_end = bisect_left(queue_lines, stop, queue_at, queued)
            if queue_end > queue_at:
                resolved = array("q", builder.intern_texts(texts[queue_at:queue_end], not unusual, unseen))
                library.bs_resolve(scanner, queue_at, queue_end - queue_at, column_address(resolved))
                queue_at = queue_end
            library.bs_commit(scanner, position, stop, *commit_pointers)
            rows, bad, clamped_here, quotes_here = commit_counts
            if rows:
                builder.add_rows(out.columns, rows)
            for index in range(bad):
                stats._record_malformed(first_line + bad_lines[index] + 1, _VERDICTS[bad_kinds[index]])
            events += rows
            quotes += quotes_here
            clamped += clamped_here
            while name_at < names and name_spans[3 * name_at] < stop:
                start, end = name_spans[3 * name_at + 1], name_spans[3 * name_at + 2]
                symbol = block[start:end].decode("utf-8", "replace").upper()
                if symbol not in symbols:
                    symbols.append(symbol)
                name_at += 1
        if python_at < python:
            run_end = python_at + 1
            while run_end < python and python_lines[3 * run_end] == stop + run_end - python_at:
                run_end += 1
            texts_of_run = [
                block[python_lines[3 * index + 1] : python_lines[3 * index + 2]].decode("utf-8", "replace")
                for index in range(python_at, run_end)
            ]
            clock[0] = moment.value
            _python_lines(texts_of_run, stats, builder, first_line + stop, clock)
            moment.value = clock[0]
            position = stop + run_end - python_at
            python_at = run_end
        else:
            position = lines
    clock[0] = moment.value
    stats.lines_read += lines - python
    stats.bbo_events += quotes
    stats.trade_events += events - quotes
    stats.events_yielded += events
    stats.depth_lines += depth
    stats.other_lines += other
    stats.clamped_timestamps += clamped
    return lines, scanned_to


def seconds(nanoseconds: int) -> float:
    """The scanner's time for a receive time in nanoseconds (for the tests: it must be Python's
    ``nanoseconds / 10**9`` bit for bit)."""
    library = load()
    if library is None:
        raise ScannerUnavailable("compiled feed scanner unavailable")
    return library.bs_seconds(nanoseconds)
