"""The journal's WAL is checkpointed by its own thread, never inside a commit (see
execution/wal_checkpointer.py): a commit beside an order's signature must not copy the log."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from pathlib import Path

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
