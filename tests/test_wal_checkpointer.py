"""The journal's WAL is checkpointed by its own thread, never inside a commit (see
execution/wal_checkpointer.py): a commit beside an order's signature must not copy the log."""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from execution.journal import ExecutionJournal
from execution.wal_checkpointer import WalCheckpointer

DEADLINE_SECONDS = 10.0


def _wait_for(condition, what: str) -> None:
    """Poll a condition another thread makes true (bounded; the outcome, not the time, is tested)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _wal_pages(path: Path) -> float:
    wal = path.with_name(path.name + "-wal")
    page_size = sqlite3.connect(str(path)).execute("PRAGMA page_size").fetchone()[0]
    return wal.stat().st_size / (page_size + 24)  # each WAL frame: a page and a 24-byte header


def test_commits_never_checkpoint_the_log(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint (at 1,000 pages of log) would restart the log in one of these
    commits; with it off, the log keeps every frame until the checkpointer copies them."""
    path = tmp_path / "journal.sqlite"
    journal = ExecutionJournal(path)
    assert journal.checkpointer is not None
    journal.checkpointer.stop()  # only the commits below could checkpoint now
    filler = "x" * 3000  # about a page a row
    for index in range(2500):
        journal.set_meta(f"filler-{index}", filler)
    assert _wal_pages(path) > 2000
    journal.close()


def test_the_thread_checkpoints_the_log_after_the_gate(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = ExecutionJournal(path)
    assert journal.checkpointer is not None
    journal.checkpointer.stop()
    for index in range(50):
        journal.set_meta(f"key-{index}", "value")
    entered, release = threading.Event(), threading.Event()

    def gate() -> None:  # a reaction holding background output off
        entered.set()
        release.wait(DEADLINE_SECONDS)

    checkpointer = WalCheckpointer(path, interval=0.001, gate=gate)
    assert entered.wait(DEADLINE_SECONDS)
    assert checkpointer.checkpoints == 0  # held at the gate: no checkpoint during a reaction
    release.set()
    _wait_for(lambda: checkpointer.checkpoints >= 1, "a checkpoint")
    assert checkpointer.last_result is not None
    log_frames, checkpointed = checkpointer.last_result
    assert log_frames >= 50 and checkpointed == log_frames
    checkpointer.stop()
    assert not checkpointer.running
    journal.close()


class _CommitDuringFirstPass:
    """The checkpointer's connection, with a commit of the bot's landing while its first pass
    runs (its frames come after what that pass copies, as a commit made meanwhile would)."""

    def __init__(self, db: sqlite3.Connection, commit) -> None:
        self.db, self.commit, self.passes = db, commit, 0

    def execute(self, sql: str) -> list[tuple[int, int, int]]:
        row = self.db.execute(sql).fetchone()
        self.passes += 1
        if self.passes == 1:
            self.commit()
        return _Rows(row)


class _Rows:
    def __init__(self, row: tuple[int, int, int]) -> None:
        self.row = row

    def fetchone(self) -> tuple[int, int, int]:
        return self.row


def test_a_commit_during_a_pass_does_not_keep_the_log_from_starting_over(tmp_path: Path) -> None:
    """The writer starts the log over only when it begins with every frame copied: a pass that
    a commit outran is followed by another, so the next commit starts the log over."""
    path = tmp_path / "journal.sqlite"
    journal = ExecutionJournal(path)
    assert journal.checkpointer is not None
    journal.checkpointer.stop()
    for index in range(300):
        journal.set_meta(f"key-{index}", "x" * 500)
    db = sqlite3.connect(str(path), isolation_level=None)
    log_before = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]  # copies nothing new
    for index in range(300):
        journal.set_meta(f"key-{index}", "y" * 500)
    connection = _CommitDuringFirstPass(db, lambda: journal.set_meta("during", "the first pass"))
    journal.checkpointer.checkpoint(connection)  # type: ignore[arg-type]
    assert connection.passes >= 2
    journal.set_meta("after", "the checkpoint")  # begins with every frame copied: starts over
    log_after = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert 0 < log_after < 10 < log_before
    db.close()
    journal.close()


def test_a_failed_checkpoint_is_counted_and_the_thread_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = ExecutionJournal(path)
    assert journal.checkpointer is not None
    closed = sqlite3.connect(str(path))
    closed.close()
    journal.checkpointer.checkpoint(closed)  # sqlite3.ProgrammingError: a closed connection
    assert journal.checkpointer.failures == 1
    assert journal.checkpointer.running
    journal.close()


def test_a_journal_that_cannot_be_opened_is_said_once_and_the_thread_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="execution.wal_checkpointer")
    checkpointer = WalCheckpointer(tmp_path / "no such folder" / "journal.sqlite", interval=0.001)
    checkpointer._thread.join(DEADLINE_SECONDS)
    assert not checkpointer.running and checkpointer.checkpoints == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"journal checkpoints off: cannot open {tmp_path / 'no such folder' / 'journal.sqlite'} "
        "(unable to open database file)"
    ]


def test_close_stops_the_thread_and_leaves_no_log(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = ExecutionJournal(path)
    journal.set_meta("key", "value")
    checkpointer = journal.checkpointer
    assert checkpointer is not None and checkpointer.running
    journal.close()
    assert not checkpointer.running
    assert not path.with_name(path.name + "-wal").exists()  # the last connection checkpointed it
    reopened = ExecutionJournal(path)
    assert reopened.get_meta("key") == "value"
    reopened.close()


def test_a_journal_dropped_without_close_stops_its_thread(tmp_path: Path) -> None:
    journal = ExecutionJournal(tmp_path / "journal.sqlite")
    checkpointer = journal.checkpointer
    assert checkpointer is not None and checkpointer.running
    del journal
    gc.collect()
    checkpointer._thread.join(DEADLINE_SECONDS)
    assert not checkpointer.running


def test_an_in_memory_journal_has_no_checkpointer() -> None:
    assert ExecutionJournal(None).checkpointer is None
