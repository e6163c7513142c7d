"""WAL checkpoints of a durable journal, made by a thread of their own instead of inside a commit.

Why: SQLite checkpoints a WAL database automatically, inside whichever commit takes the log past
1,000 pages. For a live bot that commit is the one beside an order's signature (the journal is
flushed while the venue client signs, before the request leaves), and on the Lighter reaction
benchmark that checkpoint took about 4 ms: every ~25th fill's take-profit left 3.5-4 ms late
(``post_sign`` p99 3.3-3.6 ms, total p99 5.2 ms). So the journal's connection never checkpoints
(``wal_autocheckpoint=0``) and this thread does it on its own connection every
``interval`` seconds: a PASSIVE checkpoint, which neither waits for nor blocks the writer, and
runs with the GIL released (the sqlite3 module lets go of it around SQLite's work).

It starts none while a reaction holds background output off (``helpers.reaction_hold``), like
the log listener and the orders-CSV writer. A checkpoint with nothing new in the log returns at
once. Durability is unchanged: a commit is in the WAL before it returns, checkpointed or not;
a killed process leaves a WAL that the next open replays.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from helpers.log_setup import wait_while_output_paused

logger = logging.getLogger(__name__)

#: Seconds between checkpoints (the reaction benchmark, ~90 fills a second, writes ~3,000 frames
#: a second, which the first pass copies in ~15 ms).
CHECKPOINT_SECONDS = 1.0
#: Most passes one checkpoint makes (see :meth:`WalCheckpointer.checkpoint`).
MAX_PASSES = 4


class WalCheckpointer:
    """One daemon thread checkpointing the WAL of the database at ``path``.

    It holds no reference to its journal: the journal's finalizer stops it (:meth:`stop` with
    ``wait=False``) if the journal is dropped without being closed.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval: float = CHECKPOINT_SECONDS,
        gate: Callable[[], None] = wait_while_output_paused,
    ) -> None:
        self.path = path
        self.interval = interval
        self._gate = gate
        self._stop = threading.Event()
        #: Checkpoints made, and the last one's (frames in the log, frames checkpointed).
        self.checkpoints = 0
        self.last_result: tuple[int, int] | None = None
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="journal-checkpoint", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, wait: bool = True) -> None:
        """End the thread after the checkpoint it may be making; ``wait``: until it has ended
        and closed its connection (the journal's close, so that no checkpoint is under way when
        the journal's own connection closes and SQLite copies what is left and removes the log)."""
        self._stop.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        stop = self._stop
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None)
        except sqlite3.Error as exc:
            logger.warning("journal checkpoints off: cannot open %s (%s)", self.path, exc)
            return
        try:
            while not stop.wait(self.interval):
                self._gate()
                if stop.is_set():
                    return
                self.checkpoint(db)
        finally:
            db.close()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        """Copy the log into the database, in PASSIVE passes until one finds nothing new.

        Why more than one pass: the writer starts the log over (and the file stops growing)
        only when it begins a transaction with every frame copied. A pass copies the frames
        there were when it started; commits made meanwhile are left for the next pass, which
        is short. With one pass a second, a bot committing every few ms never let the log
        start over (the reaction benchmark's grew by ~3,000 frames, 12 MB, a second). A
        failure is logged (the first, then every hundredth)."""
        previous = -1
        try:
            for _ in range(MAX_PASSES):
                _busy, log_frames, done_frames = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.last_result = (int(log_frames), int(done_frames))
                if log_frames in (previous, 0):
                    break
                previous = log_frames
        except sqlite3.Error as exc:
            self.failures += 1
            if self.failures % 100 == 1:
                logger.warning("journal checkpoint failed (%s); %d failures so far", exc, self.failures)
            return
        self.checkpoints += 1
