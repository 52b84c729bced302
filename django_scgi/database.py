"""What the server owes the database under gevent: cooperative drivers, and shutdown.

Under gevent a database driver must wait for its socket through gevent's hub, or one
slow query stops every other request of the process.

- **psycopg2** waits inside libpq unless a *wait callback* is installed; ours
  (``gevent_wait_callback``) asks libpq to poll and waits for the socket with gevent.
- **psycopg 3** runs libpq non-blocking and waits in ``psycopg.waiting.wait``. Its C
  build (``psycopg[binary]``/``[c]``) picks a C wait function that gevent cannot patch
  (psycopg issue #527); newer releases notice gevent's patching when they are imported
  after it, older ones and a psycopg imported before the patching do not. We make sure
  a select-based wait (gevent's patched ``select.poll``) is the one in use.

``install_cooperative_drivers()`` is called by the launcher right after gevent's
patching, before Django loads; it imports a driver only if it is installed.
Connection admission (how many connections a process may open) is in ``dbpool.py``.

Imports: stdlib at module level; gevent, the drivers and django inside functions.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

logger = logging.getLogger(__name__)

# The drivers that wait inside C code gevent cannot reach, and what to use instead.
# Keyed by the DB-API module Django's backend uses (``wrapper.Database.__name__``).
BLOCKING_DRIVERS: dict[str, str] = {
    "MySQLdb": "PyMySQL (pip install pymysql; pymysql.install_as_MySQLdb() in settings), "
               "a pure Python driver gevent makes cooperative",
    "cx_Oracle": "python-oracledb in thin mode (the default of oracledb), pure Python",
}


def install_cooperative_drivers() -> list[str]:
    """Make every installed PostgreSQL driver cooperative; the names of those handled."""
    done = []
    if _installed("psycopg2") and install_psycopg2():
        done.append("psycopg2")
    if _installed("psycopg") and install_psycopg():
        done.append("psycopg")
    return done


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --- psycopg2 ------------------------------------------------------------------------


def install_psycopg2() -> bool:
    """Install ``gevent_wait_callback`` as psycopg2's wait callback; False if unusable."""
    try:
        import psycopg2.extensions
    except ImportError:
        return False  # found but broken (e.g. a missing libpq): Django will say so
    current = psycopg2.extensions.get_wait_callback()
    if current is not None and current is not gevent_wait_callback:
        logger.info("psycopg2 already has a wait callback (%r); leaving it.", current)
        return True
    psycopg2.extensions.set_wait_callback(gevent_wait_callback)
    return True


def gevent_wait_callback(conn: Any, timeout: float | None = None) -> None:
    """psycopg2's wait callback: libpq says what it waits for, gevent does the waiting.

    With a callback installed psycopg2 runs every connect and query asynchronously and
    calls this to finish it: ``poll()`` advances libpq and reports whether it needs the
    socket readable or writable.
    """
    import psycopg2
    import psycopg2.extensions as ext
    from gevent.socket import wait_read, wait_write

    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        if state == ext.POLL_READ:
            wait_read(conn.fileno(), timeout=timeout)
        elif state == ext.POLL_WRITE:
            wait_write(conn.fileno(), timeout=timeout)
        else:
            raise psycopg2.OperationalError(f"unexpected state from poll(): {state!r}")

# --- psycopg 3 ----------------------------------------------------------------------


def install_psycopg() -> bool:
    """Make ``psycopg.waiting`` wait through gevent; False if psycopg cannot be imported."""
    try:
        from psycopg import waiting
    except ImportError:
        return False
    import selectors

    if waiting.wait is getattr(waiting, "wait_c", None):
        # The C wait blocks the process; wait_poll uses select.poll, which gevent patched.
        waiting.wait = waiting.wait_poll
    # wait_conn (connecting) uses the selector class psycopg bound at its import:
    # gevent's own when psycopg was imported after the patching.
    setattr(waiting, "DefaultSelector", selectors.DefaultSelector)  # noqa: B010
    return True


def psycopg_wait_name() -> str:
    """The name of the wait function psycopg 3 uses (for tests and diagnostics)."""
    from psycopg import waiting

    return getattr(waiting.wait, "__name__", repr(waiting.wait))


# --- Django -------------------------------------------------------------------------


def blocking_driver(wrapper: Any) -> str | None:
    """The cooperative alternative when ``wrapper``'s driver blocks under gevent, else None."""
    module = getattr(getattr(wrapper, "Database", None), "__name__", "")
    if module == "oracledb":
        return None if _oracledb_is_thin(wrapper.Database) else BLOCKING_DRIVERS["cx_Oracle"]
    return BLOCKING_DRIVERS.get(module.split(".")[0])


def _oracledb_is_thin(oracledb: Any) -> bool:
    is_thin = getattr(oracledb, "is_thin_mode", None)
    return bool(is_thin()) if callable(is_thin) else True
