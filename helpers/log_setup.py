"""Console and activity-log configuration, with secrets scrubbed from every record.

Each bot writes ``<log_dir>/<exchange>_<ticker>_<strategy>_activity.log`` so several bots under
tmux never write into the same file. The console shows what a trader follows (orders, fills,
take-profits, PnL, pauses); the file keeps everything, tracebacks included.

Records go through a queue to a listener thread, so formatting and I/O stay off the event loop.
That thread still needs the GIL, so the console handler is a plain, cheap formatter (~10 us a
record): rich's RichHandler took ~0.65 ms of Python per record, and ~20 records per grid cycle
made the listener compete with the loop right while a fill was turned into a take-profit
(benchmarks/lighter_reaction_latency.py: p50 8.3 ms with rich vs 3.7 ms plain, 2.4 ms with no
logging). For the same reason, records below WARNING made on a thread running an event loop are
held and handed to the listener in one batch ``LOG_HANDOVER_SECONDS`` after the first of them
(as the orders CSV is): the listener wakes once per batch, after the reaction, instead of once
per record inside it. A warning or an error goes at once, after what was held before it, and
:func:`stop_logging` hands over whatever is still held. The lines of the reaction itself (a
fill, its take-profit) are not even made inside it: :func:`log_after_reaction` puts them off
until the reaction's hold (``helpers.reaction_hold``) ends. A process killed outright loses at most
that last fraction of a second of INFO lines (the journal, not the log, is the record of orders).

Long runs: the activity log rotates by size (``max_bytes``, ``backups`` old files kept as
``.1`` ... ``.N``; the rollover runs in the listener thread like every other write) and has its
own level (INFO by default; DEBUG wrote 2.8 MB an hour). A console whose reader went away
(``runbot.py ... | head -3``, a closed terminal) is dropped quietly: the first failed write turns
the console handler off, points the stream at /dev/null so the interpreter's final flush cannot
fail either, and notes it once in the activity log; the bot keeps trading and logging to the file.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import enum
import errno
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import IO, ClassVar

#: Defaults of the rotation and file-level options (runbot's --log-max-mb / --log-backups /
#: --file-log-level).
DEFAULT_LOG_MAX_MB = 20.0
DEFAULT_LOG_BACKUPS = 5
DEFAULT_FILE_LOG_LEVEL = "INFO"
#: How long an event-loop thread holds its INFO/DEBUG records before the listener gets them.
LOG_HANDOVER_SECONDS = 0.05

_SECRET_NAME = re.compile(r"(KEY|SECRET|PRIVATE|PASSWORD|TOKEN|MNEMONIC|SEED_PHRASE)", re.IGNORECASE)
_MIN_SECRET_LENGTH = 8
REDACTED = "***"


def secret_values_from_environment(environ: dict[str, str] | None = None) -> set[str]:
    """Values of environment variables whose names say they are secrets."""
    env = os.environ if environ is None else environ
    return {
        value for name, value in env.items() if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH
    }


class SecretRedactor(logging.Filter):
    """Replaces any known secret value in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = self.redact(record.getMessage())
            record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def activity_log_path(log_dir: Path, bot_name: str) -> Path:
    return log_dir / f"{bot_name}_activity.log"


_IMMUTABLE_ARGS = (str, int, float, Decimal, enum.Enum, type(None))


def _immutable_args(args: object) -> bool:
    """Whether rendering the message later gives the same text as now."""
    if args is None:
        return True
    if isinstance(args, tuple):
        return all(isinstance(arg, _IMMUTABLE_ARGS) for arg in args)
    return False


class _DetachedRecordQueueHandler(logging.handlers.QueueHandler):
    """Queues a self-contained record: message rendered, traceback kept apart as text.

    The stock handler folds the traceback into the message, which would put it on the console;
    here the file formatter appends it and the console formatter leaves it out.
    """

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord]) -> None:
        super().__init__(records)
        #: Records held by each event-loop thread, in order; a hand-over takes the whole list.
        self._held: dict[int, list[logging.LogRecord]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prepared = self.prepare(record)
            if self._held_back(prepared):
                return
            # Off to the log thread now, while the handlers after this one (the notifier) may
            # still read the record: the thread redacts a copy, never what they read.
            self.queue.put_nowait(copy.copy(prepared) if prepared is record else prepared)
        except Exception:
            self.handleError(record)

    def _held_back(self, record: logging.LogRecord) -> bool:
        """Hold an INFO/DEBUG record made on an event loop (True); else hand over what this
        thread holds, so that the record going now comes after it (False)."""
        ident = threading.get_ident()
        if _put_off.calls and _put_off.owner == ident:
            # A line logged directly while a reaction has lines put off (the take-profit's
            # "placed", a warning) comes after them, as it happened after them.
            _put_off.run()
        if record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                held = self._held.setdefault(ident, [])
                held.append(record)
                if len(held) == 1:
                    loop.call_later(LOG_HANDOVER_SECONDS, self._hand_over, ident)
                return True
        self._hand_over(ident)
        return False

    def _hand_over(self, ident: int) -> None:
        for record in self._held.pop(ident, ()):
            self.queue.put_nowait(record)

    def flush(self) -> None:
        """Hand over every thread's held records (at shutdown: a loop that ended cannot)."""
        for ident in list(self._held):
            self._hand_over(ident)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not record.exc_info and _immutable_args(record.args):
            # Rendered (and redacted) by the listener thread: a fill's log line is on the loop
            # between the fill and its take-profit, and its formatting need not be. A held record
            # goes as it is: the handlers after this one are done with it by its hand-over.
            return record
        prepared = copy.copy(record)
        prepared.msg, prepared.args = record.getMessage(), None
        if prepared.exc_info:
            prepared.exc_text = logging.Formatter().formatException(prepared.exc_info)
            prepared.exc_info = None
        return prepared


class _ConsoleFormatter(logging.Formatter):
    """Console lines: ``HH:MM:SS LEVEL    message``, never a traceback (those go to the log file).

    On a terminal, warnings and errors are coloured (plain ANSI codes, no rendering library).
    """

    _COLOURS: ClassVar[dict[int, str]] = {
        logging.WARNING: "\033[33m",
        logging.ERROR: "\033[31m",
        logging.CRITICAL: "\033[1;31m",
    }

    def __init__(self, colour: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(message)s", "%H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        line = f"{self.formatTime(record, self.datefmt)} {record.levelname:<8} {record.message}"
        colour = self._COLOURS.get(record.levelno) if self.colour else None
        return f"{colour}{line}\033[0m" if colour else line


def _stream_is_gone(exc: BaseException) -> bool:
    """A write failed because nobody reads the stream any more (pipe reader gone, fd closed)."""
    if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
        return True
    if isinstance(exc, ValueError):  # "I/O operation on closed file"
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EBADF, errno.EIO)


def silence_stream(stream: IO[str] | None) -> None:
    """Point a dead standard stream at /dev/null, so later writes and the exit flush succeed."""
    if stream is None:
        return
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _QuietConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that switches itself off when its stream is gone, without a traceback.

    A record logged with ``extra={"console": False}`` goes to the activity log (and the
    notifier) only: for a line the console already shows in another form.
    """

    def __init__(self, stream: IO[str], on_gone: logging.Logger) -> None:
        super().__init__(stream)
        self.gone = False
        self._notice = on_gone

    def emit(self, record: logging.LogRecord) -> None:
        if not self.gone and getattr(record, "console", True):
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if exc is None or not _stream_is_gone(exc):
            super().handleError(record)
            return
        self.gone = True
        silence_stream(self.stream)
        self._notice.warning(
            "console output closed (%s); logging to the activity log only", type(exc).__name__
        )


class _OutputGate:
    """Closed while the bot reacts to a fill (``helpers.reaction_hold``): the log thread waits
    between records until it opens again, or until the deadline given when it was closed."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self._deadline = 0.0

    def close(self, longest_seconds: float) -> None:
        self._deadline = time.monotonic() + longest_seconds
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def wait(self) -> None:
        if not self._open.is_set():
            self._open.wait(max(0.0, self._deadline - time.monotonic()))


_output_gate = _OutputGate()


class _PutOffLines:
    """Log calls a reaction puts off until it is over (:func:`log_after_reaction`).

    Only the thread that paused the output puts calls off; they run there, in order, when the
    output resumes, or before any other line that thread logs meanwhile (so the log keeps its
    order: the path's own lines are put off, the take-profit's "placed" comes after them).
    """

    def __init__(self) -> None:
        self.owner: int | None = None
        self.calls: list[tuple[Callable[..., None], tuple[object, ...]]] = []

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for write, args in calls:
            try:
                write(*args)
            except Exception:
                logging.getLogger(__name__).exception("a log line put off by a reaction failed")


_put_off = _PutOffLines()


def log_after_reaction(write: Callable[..., None], *args: object) -> None:
    """Run ``write(*args)``, a function that logs, once the reaction in progress is over; at
    once when there is none (a backtest, a tool, a bot at rest).

    For the lines of the path from a fill to its take-profit: making a record and the text of
    its arguments cost 10-30 µs each there, and the trader reads them after the take-profit left
    just the same. ``args`` must be values taken now (the state the line describes); the
    record's time is when it is made, at most the hold's limit (a few ms typically) later. A
    line the same thread logs directly meanwhile makes the put-off ones first (log lines on the
    path are put off so that none comes before the take-profit is sent)."""
    if _put_off.owner == threading.get_ident():
        _put_off.calls.append((write, args))
    else:
        write(*args)


def pause_output(longest_seconds: float) -> None:
    """Keep the log thread from writing for at most ``longest_seconds`` (a reaction starts),
    and put off the lines this thread logs through :func:`log_after_reaction` meanwhile."""
    _output_gate.close(longest_seconds)
    _put_off.owner = threading.get_ident()


def resume_output() -> None:
    """Make the lines put off, then let the log thread write again (the reaction is over)."""
    _put_off.owner = None
    _put_off.run()
    _output_gate.open()


def wait_while_output_paused() -> None:
    """For background writer threads (the log listener, the orders CSV): wait while a reaction
    has the output paused, at most until its deadline. Their formatting would otherwise take
    the GIL from the reaction, which waits up to the interpreter's switch interval for it."""
    _output_gate.wait()


class _GatedQueueListener(logging.handlers.QueueListener):
    """A queue listener that writes nothing while the output gate is closed."""

    def handle(self, record: logging.LogRecord) -> None:
        wait_while_output_paused()
        super().handle(record)


_listener: logging.handlers.QueueListener | None = None
_queue_handler: _DetachedRecordQueueHandler | None = None


def stop_logging() -> None:
    """Flush and stop the listener thread (idempotent; also runs at interpreter exit)."""
    global _listener, _queue_handler
    resume_output()
    if _queue_handler is not None:
        _queue_handler.flush()
        _queue_handler = None
    if _listener is not None:
        _listener.stop()
        for handler in _listener.handlers:
            handler.close()
        _listener = None


def configure_logging(
    log_dir: Path,
    bot_name: str,
    level: str = "INFO",
    *,
    file_level: str = DEFAULT_FILE_LOG_LEVEL,
    max_bytes: int = int(DEFAULT_LOG_MAX_MB * 1024 * 1024),
    backups: int = DEFAULT_LOG_BACKUPS,
) -> Path:
    """Set up console + file logging for one bot process; returns the activity log path.

    Raises OSError (with the path in it) when ``log_dir`` cannot be created or the log file
    cannot be opened for appending; nothing is changed in that case.
    """
    global _listener, _queue_handler
    if backups < 1 or max_bytes < 1:
        raise ValueError("log rotation needs max_bytes >= 1 and backups >= 1")
    log_dir.mkdir(parents=True, exist_ok=True)
    path = activity_log_path(log_dir, bot_name)
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    redactor = SecretRedactor(secret_values_from_environment())

    stop_logging()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    # The formats name no source line, thread or process: not looking them up takes about a
    # third off each record made on the loop (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    console_level = getattr(logging, level.upper())
    file_log_level = getattr(logging, file_level.upper())
    # Records below both levels are not even built (a DEBUG record costs the loop ~10 us).
    root.setLevel(min(console_level, file_log_level))

    file_handler.setLevel(file_log_level)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [file_handler]

    if sys.stdout is not None:
        # The notice goes straight to the file handler: the console is what just failed.
        notice = logging.getLogger(f"{__name__}.console")
        notice.propagate = False
        for old in list(notice.handlers):
            notice.removeHandler(old)
        notice.addHandler(file_handler)
        console_handler = _QuietConsoleHandler(sys.stdout, notice)
        console_handler.setLevel(console_level)
        console_handler.setFormatter(_ConsoleFormatter(colour=sys.stdout.isatty()))
        handlers.append(console_handler)

    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = _queue_handler = _DetachedRecordQueueHandler(records)
    for handler in handlers:
        # In the listener thread, where the message is rendered (see the queue handler).
        handler.addFilter(redactor)
    root.addHandler(queue_handler)
    _listener = _GatedQueueListener(records, *handlers, respect_handler_level=True)
    _listener.start()
    atexit.register(stop_logging)
    for noisy in ("websockets", "aiohttp", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
