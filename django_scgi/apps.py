"""The Django app: registers the system checks and the peer-trouble log filter."""

from __future__ import annotations

import logging

from django.apps import AppConfig


class DjangoScgiConfig(AppConfig):
    name = "django_scgi"
    verbose_name = "SCGI server"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)

        logging.getLogger("django.request").addFilter(drop_peer_trouble)


def drop_peer_trouble(record: logging.LogRecord) -> bool:
    """False for Django's error record of a request whose body the peer failed to send.

    A truncated or stalled upload reaches the view as ``UnreadablePostError`` and Django
    logs it with a full traceback, once per request: 600 stalled uploads wrote 1,200
    lines. The server has logged each already, in one rate-limited line with the peer
    and the reason (``server/peerlog.py``); its ``IncompleteBody`` carries a marker
    attribute, so this filter needs no import of the server (which Django apps must not
    import: it brings gevent).
    """
    error = record.exc_info[1] if record.exc_info else None
    seen = 0
    while error is not None and seen < 8:  # a cause chain is short; never loop forever
        if getattr(error, "django_scgi_peer_trouble", False):
            return False
        error = error.__cause__ or error.__context__
        seen += 1
    return True
