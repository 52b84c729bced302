"""Where ``runscgi``'s own log lines go when the project did not say.

Library code never adds handlers. runscgi is not library code, though: it is the
program, like ``runserver``, whose lines Django's default LOGGING shows. Django's
default LOGGING has no handler for ``django_scgi`` (nor for the root logger), so in a
fresh ``startproject`` our INFO lines (listening, stopping) vanish and our warnings
reach Python's last-resort handler as bare text. So the command, and only it, adds one
stderr handler with time and level to the ``django_scgi`` logger, but only when the
project's logging sends that logger's records nowhere (no handler on it or on any
ancestor it propagates to, root included). A project that configured ``django_scgi``,
``django_scgi.server`` or the root logger keeps exactly its own configuration; the level
is then changed only when ``--log-level``, ``SCGI_LOG_LEVEL`` or ``-v`` asked for one.
"""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "django_scgi"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Django's -v/--verbosity (0-3) as a level, when --log-level is not given.
VERBOSITY_LEVELS = {0: "WARNING", 1: "INFO", 2: "DEBUG", 3: "DEBUG"}


class _DefaultHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler as ours, so a second call does not add another."""


def configure(level: str, explicit: bool) -> bool:
    """Give the ``django_scgi`` logger a stderr handler if it has nowhere to go.

    ``level``: a logging level name; set when we add the handler, or when ``explicit``
    (the user asked for it). Returns True when the handler was added.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if any(isinstance(handler, _DefaultHandler) for handler in logger.handlers):
        logger.setLevel(level)
        return False
    if logger.hasHandlers():
        if explicit:
            logger.setLevel(level)
        return False
    handler = _DefaultHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    return True
