"""Console and activity-log configuration, with secrets scrubbed from every record.

Each bot writes ``<log_dir>/<exchange>_<ticker>_<strategy>_activity.log`` so several bots under
tmux never write into the same file. The console shows what a trader follows (orders, fills,
take-profits, PnL, pauses); the file keeps everything, tracebacks included.

Records go through a queue to a listener thread: rendering the console and writing the file
costs milliseconds, which must not sit between a fill and its take-profit on the event loop.
"""

from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import os
import queue
import re
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

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


class _MessageOnlyFormatter(logging.Formatter):
    """Console lines: the message alone, never a traceback (those go to the activity log)."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


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

    console_handler = RichHandler(
        console=Console(stderr=False, soft_wrap=True),
        show_path=False,
        markup=False,
        rich_tracebacks=False,
        log_time_format="%H:%M:%S",
    )
    console_handler.setLevel(getattr(logging, level.upper()))
    console_handler.setFormatter(_MessageOnlyFormatter())

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
