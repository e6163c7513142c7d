"""helpers.log_setup.log_after_reaction: a reaction's lines are made once it is over, in order,
with the values of their moment; a warning meanwhile comes after them; nothing is lost.

And the two callers on the path from a fill to its take-profit: the execution engine's FILL line
and the grid's take-profit line wait for the reaction, saying what was true when it started.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from helpers import log_setup
from helpers.reaction_hold import ReactionHold


class Lines(logging.Handler):
    """Every record's message, in the order records were made."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("put-off-test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # whatever handlers other tests left on the root stay out of it
    yield handler
    logger.removeHandler(handler)
    logger.propagate = True
    log_setup.resume_output()


LOGGER = logging.getLogger("put-off-test")


def test_without_a_reaction_the_line_is_made_at_once(lines: Lines) -> None:
    log_setup.log_after_reaction(LOGGER.info, "now %s", 1)
    assert lines.messages == ["now 1"]


def test_during_a_reaction_lines_wait_and_come_in_order(lines: Lines) -> None:
    log_setup.pause_output(1.0)
    log_setup.log_after_reaction(LOGGER.info, "fill %s", Decimal("0.01"))
    log_setup.log_after_reaction(LOGGER.info, "take-profit %s", Decimal("3000.6"))
    assert lines.messages == []
    log_setup.resume_output()
    assert lines.messages == ["fill 0.01", "take-profit 3000.6"]
    log_setup.resume_output()  # twice: nothing made twice
    assert len(lines.messages) == 2


@pytest.fixture
def queued() -> Iterator[tuple[logging.Logger, queue.SimpleQueue[logging.LogRecord]]]:
    """A logger whose records go through the bot's own queue handler, and that handler's queue."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = log_setup._DetachedRecordQueueHandler(records)
    logger = logging.getLogger("put-off-queue-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, records
    logger.removeHandler(handler)
    logger.propagate = True
    log_setup.resume_output()


def taken(records: queue.SimpleQueue[logging.LogRecord]) -> list[str]:
    out = []
    while not records.empty():
        out.append(records.get_nowait().getMessage())
    return out


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_a_line_logged_directly_during_a_reaction_comes_after_the_lines_put_off(
    queued: tuple[logging.Logger, queue.SimpleQueue[logging.LogRecord]], level: int
) -> None:
    logger, records = queued
    log_setup.pause_output(1.0)
    log_setup.log_after_reaction(logger.info, "FILL entry")
    logger.log(level, "placed exit")  # made directly (no event loop here: goes at once)
    log_setup.log_after_reaction(logger.info, "cool-down")
    log_setup.resume_output()
    assert taken(records) == ["FILL entry", "placed exit", "cool-down"]
    log_setup.resume_output()
    assert records.empty()  # each made once


def test_another_thread_is_not_put_off(lines: Lines) -> None:
    log_setup.pause_output(1.0)
    worker = threading.Thread(target=log_setup.log_after_reaction, args=(LOGGER.info, "from a thread"))
    worker.start()
    worker.join()
    assert lines.messages == ["from a thread"]


def test_stop_logging_makes_what_was_put_off(lines: Lines) -> None:
    log_setup.pause_output(1.0)
    log_setup.log_after_reaction(LOGGER.info, "last words")
    log_setup.stop_logging()
    assert lines.messages == ["last words"]


def test_a_failing_line_does_not_lose_the_others(lines: Lines, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise ValueError("bad format")

    log_setup.pause_output(1.0)
    log_setup.log_after_reaction(broken)
    log_setup.log_after_reaction(LOGGER.info, "still here")
    with caplog.at_level(logging.ERROR, logger="helpers.log_setup"):
        log_setup.resume_output()
    assert lines.messages == ["still here"]
    assert "a log line put off by a reaction failed" in caplog.text


async def test_the_reaction_hold_puts_lines_off_until_it_is_released(lines: Lines) -> None:
    hold = ReactionHold(limit_seconds=5.0)
    hold.hold()
    log_setup.log_after_reaction(LOGGER.info, "inside")
    assert lines.messages == []
    hold.release()
    assert lines.messages == ["inside"]


async def test_a_hold_that_reaches_its_limit_makes_the_lines(lines: Lines) -> None:
    hold = ReactionHold(limit_seconds=0.0)
    hold.hold()
    log_setup.log_after_reaction(LOGGER.info, "bounded")
    released = asyncio.Event()
    asyncio.get_running_loop().call_later(0.0, released.set)  # after the hold's own deadline
    await released.wait()
    assert lines.messages == ["bounded"]


async def test_the_engines_fill_line_waits_and_states_the_position_at_the_fill(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.test_execution_engine import CONTRACT, entry, exit_for, make

    engine, venue, _ = make()
    record = await engine.submit(entry(size="0.01"), CONTRACT)
    hold = ReactionHold(limit_seconds=5.0)
    engine.add_listener(hold.hold)  # as a live bot does: an execution event starts a reaction
    with caplog.at_level(logging.INFO, logger="execution"):
        venue.fill(record.venue_order_id, size="0.004")
        assert not [r for r in caplog.records if r.getMessage().startswith("FILL")]
        venue.fill(record.venue_order_id)  # the rest, in the same reaction
        take_profit = await engine.submit(exit_for(engine, "60100.0"), CONTRACT)
        venue.fill(take_profit.venue_order_id, size="0.004")
        hold.release()
    fills = [r.getMessage() for r in caplog.records if r.getMessage().startswith("FILL")]
    assert len(fills) == 3
    assert fills[0].startswith("FILL entry buy 0.004 @ 59980.0") and "position 0.004," in fills[0]
    assert "position 0.010," in fills[1]
    assert fills[2].startswith("FILL exit sell 0.004 @ 60100.0") and "position 0.006," in fills[2]
    assert "profit on its lots +0.4800" in fills[2]
