"""Log lines of the command line: progress and information on stderr, as plain lines.

The package's modules log through ``logging.getLogger(__name__)`` and configure nothing; a program
(the CLI's ``main()``, a script) calls ``configure_logging`` once. Under torchrun only rank 0 shows
information: the other ranks would repeat it word for word; their warnings and errors still show.
"""

from __future__ import annotations

import logging
import sys

from .distributed import is_main_process

PACKAGE = "celeba_model"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (tests and notebooks replace it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # noqa: ANN201 - a text stream
        return sys.stderr


class _PlainFormatter(logging.Formatter):
    """The message alone, as the lines a user reads; ``warning: ...`` / ``error: ...`` above INFO, like
    the CLI's other warnings and errors."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {message}"


_handler: logging.Handler | None = None


def configure_logging(level: int = logging.INFO) -> None:
    """Show the package's log records at ``level`` and above on stderr (called again: replaces the setting)."""
    global _handler
    logger = logging.getLogger(PACKAGE)
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = _StderrHandler()
    _handler.setFormatter(_PlainFormatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(level if is_main_process() else max(level, logging.WARNING))
