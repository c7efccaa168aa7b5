"""Logging setup: structlog to stdout, JSON under a service manager, console on a TTY.

Stdlib loggers (asyncssh, aiomysql) go through the same processors, so one stream carries
everything. This module only configures; callers log events as snake_case past-tense facts.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

# Third-party loggers that are chatty at INFO; they stay at WARNING unless we debug.
_NOISY = ("asyncssh", "aiomysql")


def _renderer(fmt: LogFormat) -> structlog.types.Processor:
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer()


def setup(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger. Safe to call again (e.g. on reload)."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(fmt)],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def get(name: str = "monha") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
