"""Console and activity-log configuration, with secrets scrubbed from every record.

Each bot writes ``<log_dir>/<exchange>_<ticker>_<strategy>_activity.log`` so several bots under
tmux never write into the same file. The console shows what a trader follows (orders, fills,
take-profits, PnL, pauses); the file keeps everything, tracebacks included.

Records go through a queue to a listener thread, so formatting and I/O stay off the event loop.
That thread still needs the GIL, so the console handler is a plain, cheap formatter (~10 us a
record): rich's RichHandler took ~0.65 ms of Python per record, and ~20 records per grid cycle
made the listener compete with the loop right while a fill was turned into a take-profit
(benchmarks/lighter_reaction_latency.py: p50 8.3 ms with rich vs 3.7 ms plain, 2.4 ms with no
logging).
"""

from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import os
import queue
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

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


class _DetachedRecordQueueHandler(logging.handlers.QueueHandler):
    """Queues a self-contained record: message rendered, traceback kept apart as text.

    The stock handler folds the traceback into the message, which would put it on the console;
    here the file formatter appends it and the console formatter leaves it out.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
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


_listener: logging.handlers.QueueListener | None = None


def stop_logging() -> None:
    """Flush and stop the listener thread (idempotent; also runs at interpreter exit)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        for handler in _listener.handlers:
            handler.close()
        _listener = None


def configure_logging(log_dir: Path, bot_name: str, level: str = "INFO") -> Path:
    """Set up console + file logging for one bot process; returns the activity log path."""
    global _listener
    log_dir.mkdir(parents=True, exist_ok=True)
    path = activity_log_path(log_dir, bot_name)
    redactor = SecretRedactor(secret_values_from_environment())

    stop_logging()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)

    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))

    console_handler = logging.StreamHandler(sys.stdout)
    console_handler.setLevel(getattr(logging, level.upper()))
    console_handler.setFormatter(_ConsoleFormatter(colour=sys.stdout.isatty()))

    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = _DetachedRecordQueueHandler(records)
    queue_handler.addFilter(redactor)
    root.addHandler(queue_handler)
    _listener = logging.handlers.QueueListener(
        records, file_handler, console_handler, respect_handler_level=True
    )
    _listener.start()
    atexit.register(stop_logging)
    for noisy in ("websockets", "aiohttp", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
