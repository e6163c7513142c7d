"""Market events as columns: the form the feed reader produces and the feed cache stores.

One event a row over six columns: time in epoch seconds (float64), kind (int8: :data:`BBO`,
:data:`BOUGHT` a trade where the buyer took liquidity, :data:`SOLD` the seller) and four
uint32 indexes into a table of the distinct decimal values (BBO: bid, ask, bid size, ask size;
trade: price, size, 0, 0). The recorded-feed reader fills a :class:`ColumnBuilder` straight from
the line's text, so a first read makes no event object and no Decimal for a value it has seen;
the MarketEvent reader the paper venue uses is a view over the same columns.
"""

from __future__ import annotations

import itertools
from array import array
from decimal import Decimal

from exchanges.base import OrderSide

BBO, BOUGHT, SOLD = 0, 1, 2

Columns = tuple[array, array, array, array, array, array]


#: bytes.translate table: a kind byte becomes 1 for a quote, 0 for a trade (a C-speed selector).
QUOTE_FLAGS = bytes(1 if kind == BBO else 0 for kind in range(256))


def column_address(column: array) -> int:
    """Where a column's items start in memory, for the compiled scanner's functions."""
    return column.buffer_info()[0]


def empty_columns() -> Columns:
    return (array("d"), array("b"), array("I"), array("I"), array("I"), array("I"))


class ColumnBuilder:
    """Columns being filled, each distinct decimal value interned once, in the order events
    first use it.

    Two ways in, one table. :meth:`bbo` and :meth:`trade` take Decimals (the synthetic market,
    the JSON paths of the reader): values are looked up by value (a Decimal caches its hash), and
    the entry found is the value when it is the very object the table holds: sources hand out
    the same Decimal objects again and again (the synthetic market's memos), so most look-ups
    end there, without formatting any text and without a table keyed by ``id`` or by text beside
    the values (those cost about 10 MB at 77,000 distinct values). An equal value that is another
    object is compared by text, since ``1.0`` and ``1.00`` are equal Decimals with different
    digits: the same text takes the table's place (so the source's current object is found by
    identity from then on), another text is a value of its own, kept in a small second table.

    The recorded-feed reader instead looks the number's text up in :attr:`known` (text -> index)
    and appends to the columns itself; only a text it has not seen goes through
    :meth:`intern_text`, which looks the value's own text (``str``) up there too, so ``+100.0``
    and ``100.0`` share an entry and ``1e2`` and ``100`` do not. A table entry is therefore one
    distinct ``str(value)``, whichever way it came in: each way also consults the other's
    look-up when that holds anything (a recording's JSON lines come in as Decimals), so a value
    is never entered twice. The values must be hashable (the sources' values are finite).
    :meth:`intern_texts` is the same look-up for a batch of valid number texts, in order (the
    compiled scanner's new texts, whose Decimals wait until something reads :attr:`values` or
    the table is sorted). The scanner hands its rows over whole (:meth:`add_rows`).
    """

    def __init__(self) -> None:
        self._columns: Columns = empty_columns()
        #: Rows handed over whole (:meth:`add_rows`), as each column's bytes, not yet joined
        #: into the columns: joined once something reads them, so a first read's columns are
        #: not grown (and copied) block by block (about 1/16 at a time: 3-4 ms of the shared
        #: feed's first read).
        self._pieces: tuple[list[bytes], ...] = tuple([] for _ in self._columns)
        self._piece_rows = 0
        values: list[Decimal] = []
        # The closures below hold these, never ``self``: no reference cycle keeps the tables (and
        # the columns) alive after the feed is built until the garbage collector runs.
        known: dict[str, int] = {}
        #: Batches of the compiled scanner's new texts (:meth:`intern_texts`' fast path) with
        #: their first index, not yet entered in ``known``: entered only once something looks a
        #: text up there (a line the scanner leaves to the Python reader, a restarted scanner
        #: table), which most recordings never do (16,000 entries: about 2 ms of a first read).
        unlisted: list[tuple[list[str], int]] = []
        #: The same batches whose Decimals are not made yet (their places in ``values`` hold
        #: None): made when something reads the table, or, once it is sorted, from the sorted
        #: texts (:func:`backtesting.feed_cache.sorted_table`), so the Decimals of a first read
        #: are made once, in table order, and never shuffled (about 2-4 ms of the shared feed).
        unmade: list[tuple[list[str], int]] = []
        by_value: dict[Decimal, int] = {}
        #: Values equal to an earlier one but written with other digits (rare): text -> index.
        by_text: dict[str, int] = {}
        find = by_value.get

        def made() -> list[Decimal]:
            if unmade:
                for texts, start in unmade:
                    values[start : start + len(texts)] = map(Decimal, texts)
                unmade.clear()
            return values

        def listed() -> dict[str, int]:
            if unlisted:
                for texts, start in unlisted:
                    known.update(zip(texts, range(start, start + len(texts)), strict=True))
                unlisted.clear()
            return known

        self._listed = listed
        self._made = made
        self._unmade = unmade
        self._table = values
        #: Every value's ``str``, in table order, joined by newlines: what the cache file's table
        #: holds, kept as the values come in (their texts are at hand then), so sorting the
        #: table does not write 16,000 Decimals out again (about 8 bytes a value).
        spelled = bytearray()
        self.table_text = spelled

        def spell(text: str) -> None:
            if spelled:
                spelled.extend(b"\n")
            spelled.extend(text.encode())

        def intern(value: Decimal, index: int | None) -> int:
            # ``index``: where an equal value is (None: nowhere), not this very object.
            text = str(value)
            if index is not None and str(values[index]) == text:
                values[index] = value
                return index
            found = by_text.get(text)
            if found is None and (known or unlisted):  # the text look-up holds values too
                found = listed().get(text)
            if found is not None:
                return found
            found = len(values)
            values.append(value)
            spell(text)
            if index is None:
                by_value[value] = found
            else:
                by_text[text] = found
            return found

        def intern_text(text: str, value: Decimal) -> int:
            canonical = str(value)
            index = (listed() if unlisted else known).get(canonical)
            if index is None:
                if by_value:  # Decimals came in too: an equal value may be there already
                    index = find(value)
                    if index is None or values[index] is not value:
                        index = intern(value, index)
                else:  # one entry per canonical text, without hashing the Decimal
                    index = len(values)
                    values.append(value)
                    spell(canonical)
                known[canonical] = index
            known[text] = index
            return index

        def intern_texts(texts: list[str], canonical: bool = False, unseen: bool = False) -> list[int]:
            # Each text's index: the reader's ``known.get(text)``, else ``intern_text`` of its
            # Decimal, in order. The compiled scanner's new texts (plain decimals, one entry each)
            # usually are all new canonical texts with no Decimal table beside: then that loop's
            # effect is appending their values in order, done in C-speed steps. ``canonical``:
            # the caller vouches that the texts are distinct and each is its Decimal's str (the
            # scanner checks that as it reads), so that is not checked again here. ``unseen``:
            # it vouches that no earlier batch held them (the scanner hands each text over once),
            # so those batches need not be entered in ``known`` to be looked through.
            if not unseen:
                listed()
            if not by_value and not (known and any(map(known.__contains__, texts))):
                if canonical:
                    start = len(values)
                    values.extend(itertools.repeat(None, len(texts)))  # type: ignore[arg-type]
                    if texts:
                        spell("\n".join(texts))
                        unlisted.append((texts, start))
                        unmade.append((texts, start))
                    return list(range(start, start + len(texts)))
                numbers = list(map(Decimal, texts))
                if list(map(str, numbers)) == texts and len(set(texts)) == len(texts):
                    start = len(values)
                    values.extend(numbers)
                    if texts:
                        spell("\n".join(texts))
                        unlisted.append((texts, start))
                    return list(range(start, start + len(texts)))
            listed()
            result = []
            for text in texts:
                index = known.get(text)
                result.append(intern_text(text, Decimal(text)) if index is None else index)
            return result

        times, kinds, first, second, third, fourth = self._columns
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
            index = find(best_bid)
            add_first(index if index is not None and values[index] is best_bid else intern(best_bid, index))
            index = find(best_ask)
            add_second(index if index is not None and values[index] is best_ask else intern(best_ask, index))
            index = find(bid_size)
            add_third(index if index is not None and values[index] is bid_size else intern(bid_size, index))
            index = find(ask_size)
            add_fourth(index if index is not None and values[index] is ask_size else intern(ask_size, index))

        def trade(timestamp: float, price: Decimal, size: Decimal, aggressor: OrderSide) -> None:
            add_time(timestamp)
            add_kind(BOUGHT if aggressor is OrderSide.BUY else SOLD)
            index = find(price)
            add_first(index if index is not None and values[index] is price else intern(price, index))
            index = find(size)
            add_second(index if index is not None and values[index] is size else intern(size, index))
            add_third(0)
            add_fourth(0)

        def release() -> None:
            # The look-up tables are only needed while events come in: emptied before the value
            # table is written and ranked, so those steps reuse their memory.
            by_value.clear()
            by_text.clear()
            known.clear()
            unlisted.clear()

        def forget() -> None:
            # A reader that has handed out every row drops the table too (bounded memory on an
            # endless replay); the lists stay the same objects, which the closures hold.
            release()
            del values[:]
            del spelled[:]
            unmade.clear()

        self.bbo = bbo
        self.trade = trade
        self.intern_text = intern_text
        self.intern_texts = intern_texts
        self.release = release
        self.forget = forget

    @property
    def known(self) -> dict[str, int]:
        """Number texts as they appeared in the source -> their value's index (the reader's
        look-up; empty for sources that hand over Decimals), every text interned so far in it."""
        return self._listed()

    @property
    def values(self) -> list[Decimal]:
        """The value table, in the order events first used each value (every Decimal made)."""
        return self._made()

    @property
    def table_size(self) -> int:
        """How many values the table holds (without making any)."""
        return len(self._table)

    @property
    def unmade_count(self) -> int:
        """How many values have no Decimal made yet (the scanner's batches not read since)."""
        return sum(len(texts) for texts, _start in self._unmade)

    @property
    def columns(self) -> Columns:
        """The rows so far, one array a column (the same array objects for the builder's life)."""
        if self._piece_rows:
            for column, pieces in zip(self._columns, self._pieces, strict=True):
                column.frombytes(b"".join(pieces))
                pieces.clear()
            self._piece_rows = 0
        return self._columns

    def add_rows(self, parts: Columns, rows: int) -> None:
        """Append the first ``rows`` rows of ``parts`` (columns of the same types; copied, so
        the caller may reuse them). Every other way in reads :attr:`columns` before it appends,
        which keeps the rows in order."""
        for pieces, part in zip(self._pieces, parts, strict=True):
            pieces.append(memoryview(part).cast("B")[: rows * part.itemsize].tobytes())
        self._piece_rows += rows

    def __len__(self) -> int:
        return len(self._columns[0]) + self._piece_rows

    def take(self, count: int | None = None) -> Columns:
        """The first ``count`` rows filled so far (all by default), removed from the columns
        (the arrays stay the same objects: the builders hold their ``append`` methods)."""
        taken: Columns = tuple(array(column.typecode, column[:count]) for column in self.columns)  # type: ignore[assignment]
        for column in self.columns:
            del column[:count]
        return taken
